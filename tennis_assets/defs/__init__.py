"""The Dagster layer: the only package that imports dagster, and nothing imports it.

assets/    tuning_study -> trained_agents -> evaluation_report -> production_model
checks.py  quality gates (blocking checks stop promotion)
jobs.py, schedules.py, sensors.py, resources.py, config.py, store.py
"""
