"""The `tennis-assets` command: train, evaluate and replay on the built-in simulator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from tennis_assets.files import DiskFullError

# What the user has to fix, here and in the core: ValueError from every config's validation (and
# its subclasses CheckpointError, MemoryLimitError), the file errors of a path the user gave
# (RunFolderInUse is a FileExistsError), and a full disk (its message says what was kept).
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                IsADirectoryError, PermissionError, DiskFullError)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _workers(text: str) -> int:
    from tennis_assets.serving.workers import MAX_WORKERS

    value = _positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_WORKERS} worker processes")
    return value


def _seed(text: str) -> int:
    from tennis_assets.agents.config import check_seed

    try:
        return check_seed(int(text) if text.lstrip("-").isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _key_values(pairs: Sequence[str]) -> dict:
    """--set actor_lr=0.002 --set batch_size=256: values parsed as JSON where they parse."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects NAME=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _split_overrides(values: dict) -> tuple[dict, dict]:
    from tennis_assets.agents import AgentConfig
    from tennis_assets.training import TrainConfig

    agent_keys = set(AgentConfig().to_dict())
    train_keys = set(TrainConfig().to_dict())
    unknown = sorted(set(values) - agent_keys - train_keys)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; agent settings: "
                         f"{sorted(agent_keys)}; training settings: {sorted(train_keys)}")
    agent = {k: v for k, v in values.items() if k in agent_keys}
    train = {k: v for k, v in values.items() if k in train_keys and k not in agent_keys}
    return agent, train


def _print_eval(evaluation, label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    # The label goes out as a plain line: a table title would be wrapped to the table's width.
    print(label)
    table = Table()
    for column in ("episodes", "mean", "median", "std", "solved (>= 0.5)", "mean length",
                   "policy latency / decision"):
        table.add_column(column)
    table.add_row(str(evaluation.episodes), f"{evaluation.mean:.3f}", f"{evaluation.median:.2f}",
                  f"{evaluation.std:.3f}", "yes" if evaluation.solved else "no",
                  f"{evaluation.mean_length:.0f}",
                  f"{evaluation.latency_per_decision_s * 1e6:.1f} us")
    Console().print(table)


def cmd_train(args: argparse.Namespace) -> int:
    from tennis_assets.agents.config import check_seed
    from tennis_assets.experiment import TrainingInterrupted, run_experiment

    values = _key_values(args.set)
    seed = args.seed
    if "seed" in values:
        # One seed drives the learner and the training run alike: --set seed is --seed.
        from_set = check_seed(values.pop("seed"), "--set seed")
        if seed is not None and from_set != seed:
            raise ValueError(f"--seed {seed} and --set seed={from_set} disagree; give one")
        seed = from_set
    agent_overrides, train_overrides = _split_overrides(values)
    if args.courts:
        train_overrides["num_courts"] = args.courts
    # Flags left out stay out: a resumed run takes them from its checkpoint, a new run from the
    # defaults.
    given = {} if args.seconds is None else {"max_seconds": args.seconds}
    try:
        result = run_experiment(
            algorithm=args.algorithm, seed=seed, out_dir=args.out,
            eval_episodes=args.eval_episodes, agent_overrides=agent_overrides,
            train_overrides=train_overrides, resume_from=args.resume,
            progress=not args.no_progress, gif=not args.no_gif, overwrite=args.overwrite,
            **given)
    except TrainingInterrupted as stop:
        print(f"{stop}\ncontinue with: tennis-assets train --algorithm {stop.algorithm} "
              f"--seed {stop.seed} --resume {stop.resume_path}", file=sys.stderr)
        # The shell's convention for a process ended by a signal: 128 + its number.
        return 143 if "SIGTERM" in stop.result.stop_reason else 130
    training = result.report["training"]
    solved = training.get("solved_greedy")
    print(f"trained {result.report['algorithm']} for {training['seconds']:.1f} s: "
          f"{training['updates']} updates, {training['episodes']} episodes")
    if solved:
        print(f"first greedy mean >= 0.5 over 100 fresh episodes after {solved['seconds']:.1f} s "
              f"({int(solved['updates'])} updates, {int(solved['episodes'])} episodes)")
    _print_eval(result.evaluation, f"greedy evaluation on {args.eval_episodes} fresh episodes")
    print(f"results in {result.out_dir}")
    for name, path in result.paths.items():
        print(f"  {name:15s} {path}")
    return 0 if result.evaluation.solved else 3


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tennis_assets.sim import CourtParams
    from tennis_assets.training import evaluate, greedy, load_learner

    learner = load_learner(args.checkpoint)
    court = CourtParams(**_key_values(args.court))
    evaluation = evaluate(greedy(learner), episodes=args.episodes, seed=args.seed, params=court)
    _print_eval(evaluation, f"{args.checkpoint}: {args.episodes} fresh episodes, seed {args.seed}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from tennis_assets.sim import CourtParams, ScriptedSwingPolicy, render_episode_gif
    from tennis_assets.training import greedy, load_learner

    if args.checkpoint == "scripted":
        policy = ScriptedSwingPolicy()
    else:
        policy = greedy(load_learner(args.checkpoint))
    court = CourtParams(**_key_values(args.court))
    path, score, length = render_episode_gif(policy, args.out, params=court, seed=args.seed)
    print(f"wrote {path}: score {score:.2f} over {length} decisions")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from prometheus_client import disable_created_metrics

    from tennis_assets.serving import ChampionSource, PolicyServer, ServerConfig
    from tennis_assets.serving.monitoring import default_monitoring_file
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker, default_tracking_uri
    from tennis_assets.tracking.preflight import check_registry_exists

    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if args.workers > 1:
        from tennis_assets.serving.workers import LOG_FORMAT as log_format  # says which process
    logging.basicConfig(level=args.log_level.upper(), format=log_format)
    # A "_created" sample per counter and histogram doubles the exposition for nothing the
    # dashboards or alerts use.
    disable_created_metrics()
    uri = args.tracking_uri or default_tracking_uri()
    check_registry_exists(uri, "--tracking-uri" if args.tracking_uri else
                          "MLflow tracking URI ($MLFLOW_TRACKING_URI, else the data directory's "
                          "database)")
    tracker = MlflowTracker(uri)
    source = ChampionSource(tracker, args.model_name, alias=args.alias,
                            poll_interval_s=args.poll_interval)
    try:
        source.check()
    except ValueError as exc:
        if not args.wait_for_model:
            raise
        # A fresh deployment (docker/) starts its server before anything is promoted.
        logging.getLogger("tennis_assets.serving").warning(
            "%s; --wait-for-model: not ready until it exists", exc)
    config = ServerConfig(host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
                          max_batch=args.max_batch, request_timeout_s=args.request_timeout,
                          idle_timeout_s=args.idle_timeout, max_concurrency=args.max_concurrency,
                          drain_timeout_s=args.drain_timeout, access_log=not args.no_access_log)
    monitoring_file = args.monitoring_file or default_monitoring_file()
    if args.workers > 1:
        return _serve_workers(args, config, tracker.tracking_uri, monitoring_file)
    try:
        server = PolicyServer(source, config, monitoring_file=monitoring_file)
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port} ({exc})") from None
    # The first model loads in the background: the port answers /healthz at once and /readyz
    # turns 200 when the champion is loaded. SIGTERM drains (see PolicyServer) and exits 0.
    print(f"serving {args.model_name}@{args.alias} from {tracker.tracking_uri} on {server.url}",
          flush=True)
    server.serve_forever()
    return 0


def _serve_workers(args: argparse.Namespace, config, tracking_uri: str, monitoring_file) -> int:
    from tennis_assets.serving.server import bind_listener
    from tennis_assets.serving.workers import serve_workers

    config.check()
    try:
        sock = bind_listener(args.host, args.port)
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port} ({exc})") from None
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    # Connections wait in the socket's backlog until the first worker accepts them.
    print(f"serving {args.model_name}@{args.alias} with {args.workers} workers from "
          f"{tracking_uri} on {url}", flush=True)
    return serve_workers(args.workers, sock, config, {
        "tracking_uri": tracking_uri, "model_name": args.model_name, "alias": args.alias,
        "poll_interval_s": args.poll_interval, "log_level": args.log_level,
        "monitoring_file": str(monitoring_file) if monitoring_file else None})


def cmd_dashboard(args: argparse.Namespace) -> int:
    from tennis_assets import dashboard, settings

    dashboard.serve(args.storage or settings.optuna_storage(), args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tennis-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train and evaluate a team; write the run's artifacts")
    train.add_argument("--algorithm", choices=["ddpg", "maddpg"], default=None,
                       help="ddpg: self-play with one shared actor and critic (default, fastest);"
                            " maddpg: per-player actors with centralised critics (with --resume: "
                            "the checkpoint's)")
    train.add_argument("--seed", type=_seed, default=None,
                       help="seed of the learner and the training run, 0 to 4294967295 "
                            "(default 0; with --resume: the checkpoint's)")
    train.add_argument("--seconds", type=_positive_float, default=None,
                       help="training budget in wall seconds (default 60; with --resume the "
                            "run's own budget, which counts the seconds before the checkpoint)")
    train.add_argument("--courts", type=_positive_int, default=None,
                       help="courts simulated side by side while training")
    train.add_argument("--eval-episodes", type=_positive_int, default=100)
    train.add_argument("--resume", default=None, metavar="PATH",
                       help="continue the run whose resume.safetensors this is, with the run's "
                            "own configuration (from the checkpoint), in its folder unless --out "
                            "says otherwise. Only the budget and checkpointing may change "
                            "(--seconds, --eval-episodes, --set max_seconds/max_updates/"
                            "max_episodes/stop_when_solved/checkpoint_*/device/torch_threads); "
                            "any other flag or --set that differs from the checkpoint is an "
                            "error naming it")
    train.add_argument("--out", default=None,
                       help="output folder (default: a new folder under "
                            "$TENNIS_ASSETS_HOME/runs); refused if it holds a run's results, "
                            "unless --overwrite")
    train.add_argument("--overwrite", action="store_true",
                       help="let --out replace the results of an earlier run in that folder")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a hyperparameter, e.g. --set actor_lr=0.002")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--no-gif", action="store_true")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="greedy evaluation of a checkpoint on fresh episodes")
    ev.add_argument("checkpoint")
    ev.add_argument("--episodes", type=_positive_int, default=100)
    ev.add_argument("--seed", type=_seed, default=2_024)
    ev.add_argument("--court", action="append", default=[], metavar="NAME=VALUE",
                    help="court parameter, e.g. --court gravity=-19.62 --court ball_scale=1.5")
    ev.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser("replay", help="write an animated GIF of one greedy episode")
    rp.add_argument("checkpoint", help="a checkpoint, or 'scripted' for the hand-written policy")
    rp.add_argument("--out", type=Path, default=Path("rally.gif"))
    rp.add_argument("--seed", type=_seed, default=0)
    rp.add_argument("--court", action="append", default=[], metavar="NAME=VALUE")
    rp.set_defaults(func=cmd_replay)

    sv = sub.add_parser("serve", help="serve the registered champion's actions over HTTP, with "
                                      "health, readiness and Prometheus metrics")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1; 0.0.0.0 in a container)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    sv.add_argument("--model-name", default="tennis-policy", help="registered model name")
    sv.add_argument("--alias", default="champion", help="registry alias to serve")
    sv.add_argument("--workers", type=_workers, default=1,
                    help="worker processes answering on the port (default 1; at most 64); "
                         "each loads the model and has its own --max-concurrency; metrics are "
                         "summed over them (prometheus-client multiprocess mode)")
    sv.add_argument("--tracking-uri", default=None,
                    help="MLflow tracking/registry URI (default $MLFLOW_TRACKING_URI, else the "
                         "data directory's SQLite database)")
    sv.add_argument("--wait-for-model", action="store_true",
                    help="start even when the model or alias does not exist yet (not ready "
                         "until it does) instead of refusing; for a stack started before its "
                         "first promotion")
    sv.add_argument("--poll-interval", type=_positive_float, default=10.0,
                    help="seconds between registry checks for a moved alias (default 10)")
    sv.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20)
    sv.add_argument("--max-batch", type=_positive_int, default=1024,
                    help="most observations in one request")
    sv.add_argument("--request-timeout", type=_positive_float, default=10.0,
                    help="seconds a client may take to send a whole request, headers and body "
                         "(default 10); slower ones get a 408 and are disconnected")
    sv.add_argument("--idle-timeout", type=_positive_float, default=60.0,
                    help="seconds an idle keep-alive connection stays open (default 60)")
    sv.add_argument("--max-concurrency", type=_positive_int, default=1000,
                    help="connections plus requests in progress; beyond it: 503 (default 1000)")
    sv.add_argument("--drain-timeout", type=_positive_float, default=30.0,
                    help="on SIGTERM, seconds the requests already received may take to be "
                         "answered (default 30)")
    sv.add_argument("--no-access-log", action="store_true",
                    help="no access lines (one JSON object per request on stderr)")
    sv.add_argument("--monitoring-file", type=Path, default=None,
                    help="drift-monitoring result exported as metrics (default "
                         "$TENNIS_ASSETS_HOME/monitoring/latest.json)")
    sv.add_argument("--log-level", default="info",
                    choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=cmd_serve)

    db = sub.add_parser("dashboard", help="optuna-dashboard on the tuning studies (extra "
                                          "'dashboard')")
    db.add_argument("--storage", default=None,
                    help="study storage URL or journal file (default "
                         "$TENNIS_ASSETS_OPTUNA_STORAGE, else the data directory's journal)")
    db.add_argument("--host", default="127.0.0.1")
    db.add_argument("--port", type=int, default=8080)
    db.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except INPUT_ERRORS as exc:
        # The user's to fix: say which, without a traceback. Anything else is a bug and keeps
        # its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
