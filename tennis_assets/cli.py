"""The `tennis-assets` command: train, evaluate and replay on the built-in simulator."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tennis_assets.config.options import SET_HELP, add_model_options, given, merge_given
from tennis_assets.files import DiskFullError
from tennis_assets.tuning_config import TuningConfig

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


def _print_eval(evaluation, label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    # The label goes out as a plain line: a table title would be wrapped to the table's width.
    print(label)
    table = Table()
    target = evaluation.threshold
    for column in ("episodes", "mean", "median", "std",
                   f"solved (>= {target:g})" if target is not None else "solve score",
                   "mean length", "policy latency / decision"):
        table.add_column(column)
    solved = ("yes" if evaluation.solved else "no") if target is not None else "none"
    table.add_row(str(evaluation.episodes), f"{evaluation.mean:.3f}", f"{evaluation.median:.2f}",
                  f"{evaluation.std:.3f}", solved,
                  f"{evaluation.mean_length:.0f}",
                  f"{evaluation.latency_per_decision_s * 1e6:.1f} us")
    Console().print(table)


def cmd_train(args: argparse.Namespace) -> int:
    from tennis_assets.experiment import TrainingInterrupted, experiment_models, run_experiment

    given = merge_given(args, experiment_models())
    settings = {name: value for values in given.values() for name, value in values.items()}
    try:
        result = run_experiment(**settings)
    except TrainingInterrupted as stop:
        print(f"{stop}\ncontinue with: tennis-assets train --resume {stop.resume_path}",
              file=sys.stderr)
        # The shell's convention for a process ended by a signal: 128 + its number.
        return 143 if "SIGTERM" in stop.result.stop_reason else 130
    training = result.report.training
    solved = training.solved_greedy
    print(f"trained {result.report.algorithm} for {training.seconds:.1f} s: "
          f"{training.updates} updates, {training.episodes} episodes")
    if solved:
        print(f"first greedy mean >= {result.report.train_config.target_score} over "
              f"{result.report.train_config.selection_episodes} fresh episodes after "
              f"{solved.seconds:.1f} s ({solved.updates} updates, {solved.episodes} episodes)")
    episodes = result.evaluation.episodes
    _print_eval(result.evaluation, f"greedy evaluation on {episodes} fresh episodes")
    print(f"results in {result.out_dir}")
    for name, path in result.paths.items():
        print(f"  {name:15s} {path}")
    if result.report.environment.fixed_target() is None:
        rnd = result.report.random
        print(f"random policy on the same episodes: mean {rnd.mean:.3f} (one-sided "
              f"Mann-Whitney U p = {rnd.p_value:.2g})")
    # 0: the result passes the solves gate (the environment's solve score, or clearly better
    # than random where there is none); 3: it does not.
    return 0 if result.report.gates.solves else 3


def _conditions(args: argparse.Namespace, environment):
    """``environment`` under the conditions ``--env-kwargs`` changes (a checkpoint's own
    environment on another court, say)."""
    from tennis_assets.envs import EnvironmentConfig

    given_kwargs = given(args, EnvironmentConfig)
    if not given_kwargs.get("env_kwargs"):
        return environment
    # Checked as the model checks any configuration (a JSON object, fields the environment has).
    changes = EnvironmentConfig(env=environment.env, **given_kwargs).env_kwargs
    return environment.with_kwargs(changes)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tennis_assets.training import evaluate, final_seed, greedy, load_learner
    from tennis_assets.training.checkpoints import read_metadata, stored_environment
    from tennis_assets.workflow.evaluation import EvaluationConfig

    config = EvaluationConfig(**given(args, EvaluationConfig))
    learner = load_learner(args.checkpoint)
    environment = _conditions(args, stored_environment(read_metadata(args.checkpoint)))
    seed = final_seed(0, config.eval_seed)
    evaluation = evaluate(greedy(learner), episodes=config.eval_episodes, seed=seed,
                          environment=environment, threshold=environment.fixed_target())
    _print_eval(evaluation, f"{args.checkpoint}: {config.eval_episodes} fresh episodes of "
                            f"{environment.env} {environment.env_kwargs or ''} (evaluation seed "
                            f"{config.eval_seed})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from tennis_assets.envs import EnvironmentConfig
    from tennis_assets.sim import RallyConfig, ScriptedSwingPolicy, render_episode_gif
    from tennis_assets.training import greedy, load_learner
    from tennis_assets.workflow.evaluation import EvaluationConfig

    rally = RallyConfig(**given(args, RallyConfig))
    frames = EvaluationConfig(**given(args, EvaluationConfig)).gif_max_frames
    environment = _conditions(args, EnvironmentConfig())
    if args.checkpoint == "scripted":
        policy = ScriptedSwingPolicy()
    else:
        from tennis_assets.training.checkpoints import read_metadata, stored_environment

        played = stored_environment(read_metadata(args.checkpoint))
        if played.kind != "tennis":
            raise ValueError(f"{args.checkpoint} plays {played.env}: replays render Tennis only")
        environment = _conditions(args, played)
        policy = greedy(load_learner(args.checkpoint))
    path, score, length = render_episode_gif(policy, rally.gif_path, params=environment.court(),
                                             seed=rally.rally_seed, max_frames=frames)
    print(f"wrote {path}: score {score:.2f} over {length} decisions")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from prometheus_client import disable_created_metrics

    from tennis_assets.serving import ChampionSource, PolicyServer, ServerConfig
    from tennis_assets.serving.monitoring import default_monitoring_file
    from tennis_assets.tracking.mlflow_tracking import MlflowTracker, default_tracking_uri
    from tennis_assets.tracking.preflight import check_registry_exists

    # The server's own limits first: a bad value is named before anything is contacted.
    config = ServerConfig(host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
                          max_batch=args.max_batch, request_timeout_s=args.request_timeout,
                          idle_timeout_s=args.idle_timeout, max_concurrency=args.max_concurrency,
                          drain_timeout_s=args.drain_timeout, access_log=not args.no_access_log)
    config.check()
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

    storage = given(args, TuningConfig).get("storage") or settings.optuna_storage()
    dashboard.serve(storage, args.host, args.port)
    return 0


# A subparsers object's add_parser: each command adds its own parser with it.
AddParser = Callable[..., argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tennis-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_evaluate, _add_replay, _add_serve, _add_dashboard):
        add(sub.add_parser)
    # Each command's own parser, by name (its options are what a user can set).
    parser.commands = dict(sub.choices)  # type: ignore[attr-defined]
    return parser


def _add_train(add_parser: AddParser) -> None:
    """`train`: every configuration model's fields as options."""
    from tennis_assets.experiment import experiment_models

    train = add_parser("train", help="train and evaluate a team; write the run's artifacts",
                       description="Every option sets the field of the same name of the "
                                   "configuration models below.")
    for model in experiment_models():
        add_model_options(train, model)
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=SET_HELP)
    train.set_defaults(func=cmd_train)


def _add_evaluate(add_parser: AddParser) -> None:
    """`evaluate`: a checkpoint on fresh episodes."""
    from tennis_assets.envs.config import EnvironmentConfig
    from tennis_assets.workflow.evaluation import EvaluationConfig

    ev = add_parser("evaluate", help="greedy evaluation of a checkpoint on fresh episodes")
    ev.add_argument("checkpoint")
    add_model_options(ev, EvaluationConfig, only=("eval_episodes", "eval_seed"))
    add_model_options(ev, EnvironmentConfig, only=("env_kwargs",),
                      title="the conditions (default: the checkpoint's own)")
    ev.set_defaults(func=cmd_evaluate)


def _add_replay(add_parser: AddParser) -> None:
    """`replay`: a GIF of one greedy episode."""
    from tennis_assets.envs.config import EnvironmentConfig
    from tennis_assets.sim.rally_config import RallyConfig
    from tennis_assets.workflow.evaluation import EvaluationConfig

    rp = add_parser("replay", help="write an animated GIF of one greedy episode")
    rp.add_argument("checkpoint", help="a checkpoint, or 'scripted' for the hand-written policy")
    add_model_options(rp, RallyConfig)
    add_model_options(rp, EvaluationConfig, only=("gif_max_frames",))
    add_model_options(rp, EnvironmentConfig, only=("env_kwargs",), title="the court")
    rp.set_defaults(func=cmd_replay)


def _add_serve(add_parser: AddParser) -> None:
    """`serve`: the policy server's options."""
    sv = add_parser("serve", help="serve the registered champion's actions over HTTP, with "
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
                    help="open connections and requests in progress (default 1000): beyond it "
                         "the idlest idle connections are closed first, and requests beyond it "
                         "get a JSON 503; /healthz and /readyz are always answered")
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


def _add_dashboard(add_parser: AddParser) -> None:
    """`dashboard`: optuna-dashboard on the studies."""
    db = add_parser("dashboard", help="optuna-dashboard on the tuning studies (extra "
                                      "'dashboard')")
    add_model_options(db, TuningConfig, only=("storage",))
    db.add_argument("--host", default="127.0.0.1")
    db.add_argument("--port", type=int, default=8080)
    db.set_defaults(func=cmd_dashboard)


# Exit codes: 0 done (train: and solved), 2 bad input (one `error:` line), 3 trained but not
# solved, 130 interrupted by Ctrl-C, 143 by SIGTERM (training saves its state first).
INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except INPUT_ERRORS as exc:
        # The user's to fix: say which, without a traceback. Anything else is a bug and keeps
        # its traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C outside training's own handler (which saves and says how to resume): while
        # starting up, loading, evaluating. Every file is written whole or not at all.
        print("error: interrupted (Ctrl-C) before the command finished; files already written "
              "are complete, nothing was left half-written", file=sys.stderr)
        # Said and handled: the way out (interpreter shutdown, library atexit hooks) must not
        # turn into a second KeyboardInterrupt that ends the process by the signal instead of
        # exit code 130 (seen once at load 15, 5.5 s into `train`).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
