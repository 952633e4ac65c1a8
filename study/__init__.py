"""The study as a plan of tasks: study/registry.py (every configuration and set, one place), study/engine.py (tasks
and the submitit executors), `python -m study` (study/__main__.py): plan, run, bench, report."""


def main(argv=None):
    """`python -m study` from Python: `study.main([...])` (imported only when called, so that `python -m study` runs
    study/__main__.py once)."""
    from study.__main__ import main as study_main
    return study_main(argv)
