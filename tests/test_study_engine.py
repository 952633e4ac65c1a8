"""python -m study: the plan of a set, the local executor's requeue on timeout, the Slurm submission (a stand-in
sbatch records it), and the one-line refusals. The smoke set end to end through the local executor, with a kill
and a resume, is tests/test_study.py's."""
import os
import stat
import subprocess
import sys

import pytest

from study.engine import Resources, Task, TaskJob, levels, plan, run_local
from study.registry import SETS, Config, Step, Where
from tests.conftest import ROOT


def where(tmp_path):
    return Where(runs=str(tmp_path / "runs"), data=str(tmp_path / "data"), threads=1)


def study(*argv, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "study", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, **(env or {})))


def test_plan_of_the_32_epoch_set_over_three_seeds(tmp_path):
    w = where(tmp_path)
    tasks = plan("e32", [0, 1, 2], w)
    ids = [t.id for t in tasks]
    assert len(ids) == len(set(ids))
    # per seed: the baseline, 6 compressed models, the int8 model of each of the 7 on both engines, ResNet-32's
    # published weights; the published ResNet-56/20 once for all seeds
    for seed in (0, 1, 2):
        mine = {i.split("/")[2] for i in ids if i.startswith(f"e32/s{seed}/")}
        assert {"base", "kd", "kd32", "nt", "l1b", "l1r16", "lowrank", "r32", "base-int8-openvino",
                "lowrank-int8-onnxruntime", "kd32-int8-openvino"} <= mine
        assert len(mine) == 22 + (2 if seed == 0 else 0)
    assert ids == [t.id for t in plan("e32", [0, 1, 2], w)]  # stable
    by_id = {t.id: t for t in tasks}
    assert by_id["e32/s1/base"].config.out == f"{w.runs}/ft-e32-s1/r56-ft.pt"  # today's file names
    assert by_id["e32/s2/l1b"].config.out == f"{w.runs}/ft-e32-s2/r56-B-ft.pt"
    assert by_id["e32/s1/kd"].deps == ["e32/s0/r20", "e32/s1/base"]  # the teacher of its own seed
    assert by_id["e32/s1/l1b"].deps == ["e32/s0/r56"]
    depth = levels(tasks)
    assert depth["e32/s0/r56"] == 0 and depth["e32/s1/base"] == 1 and depth["e32/s1/kd-int8-openvino"] == 3
    base = by_id["e32/s1/base"]
    assert "--seed" in base.config.steps[0].argv and base.config.steps[0].argv[
        base.config.steps[0].argv.index("--seed") + 1] == "1"
    # which outputs exist: a finished step, a run folder to resume
    assert base.state() == "todo"
    os.makedirs(f"{w.runs}/ft-e32-s1/r56-ft.pt.run")
    open(f"{w.runs}/ft-e32-s1/r56-ft.pt.run/last.pt", "wb").close()
    assert base.state() == "partial"
    open(f"{w.runs}/ft-e32-s1/r56-ft.pt", "wb").close()
    assert base.state() == "done"
    l1b = by_id["e32/s1/l1b"]
    open(f"{w.runs}/ft-e32-s1/r56-B.pt", "wb").close()  # pruned, not yet fine-tuned
    assert l1b.state() == "partial"


def test_plan_cli_lists_tasks_and_counts(tmp_path):
    r = study("plan", "e32", "--seeds", "0,1,2", "--runs", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["task", "state", "depth"]
    assert any(line.startswith("e32/s2/lowrank-int8-openvino ") for line in lines)
    assert lines[-1] == "68 tasks: 0 done, 0 partial (resume), 68 to do"


@pytest.mark.parametrize("argv, message", [
    (["plan", "bogus"], "unknown set 'bogus'"),
    (["plan", "quick", "--seeds", "1"], "has one seed"),
    (["plan", "e32", "--seeds", "0,x"], "--seeds '0,x'"),
    (["plan", "e32", "--seeds", "-1"], "--seeds '-1'"),
    (["run", "e32", "--executor", "cloud"], "unknown executor 'cloud'"),
    (["frobnicate", "e32"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    r = study(*argv, "--runs", str(tmp_path / "runs"), "--data-dir", str(tmp_path))
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "runs").exists()


def test_run_without_data_stops_at_once(tmp_path):
    r = study("run", "quick", "--runs", str(tmp_path / "runs"), env={"CIFAR10_DIR": str(tmp_path / "none")})
    assert r.returncode == 2 and "no CIFAR-10 under" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_slurm_submission_of_the_32_epoch_set(tmp_path):
    """No cluster here: stand-in sbatch and srun on PATH; sbatch records its argument (the submission file submitit
    generated) and answers like Slurm."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.log"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho "$@" >> "$SBATCH_LOG"\n'
                                    'echo "Submitted batch job $((4000 + $(wc -l < "$SBATCH_LOG")))"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    data = tmp_path / "data" / "cifar-10-batches-py"
    data.mkdir(parents=True)
    (data / "test_batch").write_bytes(b"")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    r = study("run", "e32", "--seeds", "0,1,2", "--executor", "slurm", "--partition", "gpu", "--gpus", "1",
              "--threads", "4", "--time", "240", "--array-parallelism", "16", "--runs", str(tmp_path / "runs"),
              "--data-dir", str(tmp_path / "data"), env=env)
    assert r.returncode == 0, r.stderr
    files = [line.split()[-1] for line in log.read_text().splitlines()]
    assert len(files) == 4  # one array per dependency depth
    scripts = [open(f).read() for f in files]
    sizes = [int(s.split("#SBATCH --array=0-")[1].split("%")[0]) + 1 for s in scripts]
    assert sizes == [5, 12, 33, 18] and sum(sizes) == 68  # every task of `plan e32 --seeds 0,1,2`
    for i, script in enumerate(scripts):
        for line in ("#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4", "#SBATCH --time=240",
                     "#SBATCH --requeue", "#SBATCH --signal=USR2@120", "#SBATCH --gpus-per-node=1",
                     f"#SBATCH --array=0-{sizes[i] - 1}%{min(16, sizes[i])}"):
            assert line in script, (line, script)
        assert ("#SBATCH --dependency=afterany:" in script) == (i > 0)
        if i:
            assert f"#SBATCH --dependency=afterany:{4000 + i}\n" in script  # after the array before it
    # every array element is a pickled task of the plan
    pickles = sorted(p.name for p in (tmp_path / "runs" / "submitit").glob("*_submitted.pkl"))
    assert len(pickles) == 68
    # the benchmark: one job with the node to itself
    r = study("bench", "e32", "--seeds", "0", "--executor", "slurm", "--runs", str(tmp_path / "runs"),
              "--data-dir", str(tmp_path / "data"), env=env)
    assert r.returncode == 2 and "r56-ft.pt missing" in r.stderr  # nothing trained yet: refused, nothing submitted
    (tmp_path / "runs" / "ft-e32").mkdir()
    (tmp_path / "runs" / "ft-e32" / "r56-ft.pt").write_bytes(b"")
    r = study("bench", "e32", "--seeds", "0", "--executor", "slurm", "--runs", str(tmp_path / "runs"),
              "--data-dir", str(tmp_path / "data"), env=env)
    assert r.returncode == 0, r.stderr
    bench = open(log.read_text().splitlines()[-1].split()[-1]).read()
    assert "#SBATCH --exclusive" in bench and "#SBATCH --array" not in bench


def test_slurm_without_a_cluster_is_one_line(tmp_path):
    data = tmp_path / "data" / "cifar-10-batches-py"
    data.mkdir(parents=True)
    (data / "test_batch").write_bytes(b"")
    r = study("run", "e8", "--executor", "slurm", "--runs", str(tmp_path / "runs"), "--data-dir",
              str(tmp_path / "data"), env={"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"})
    assert r.returncode == 2 and "srun" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_task_that_times_out_under_the_local_executor_is_requeued_and_finishes(tmp_path, monkeypatch):
    """The step sleeps far past the job's time on its first attempt (as a long training would): submitit's timeout
    signal stops it, the job is requeued, and the second attempt finds what the first left and finishes."""
    monkeypatch.chdir(ROOT)  # the job process imports study.engine from here
    out, attempts = tmp_path / "made.txt", tmp_path / "attempts"
    code = ("import os, sys, time\n"
            "a = sys.argv[2]\n"
            "n = len(open(a).read()) if os.path.exists(a) else 0\n"
            "open(a, 'a').write('x')\n"
            "time.sleep(600 if n == 0 else 0)\n"
            "open(sys.argv[1], 'w').write('done')\n")
    task = Task("tiny/s0/slow", 0, Config("slow", "sleeps on its first attempt",
                                           (Step(str(out), ("python", "-c", code, out, attempts)),)))
    res = Resources(workers=1, threads=1, timeout_min=0.5, signal_delay_s=20, max_num_timeout=3)
    failed = run_local([task], "local", str(tmp_path / "submitit"), res)
    assert failed == [] and out.read_text() == "done"
    assert attempts.read_text() == "xx"  # stopped once, run again once
    logs = "".join(p.read_text() for p in sorted((tmp_path / "submitit").glob("*_log.*")))
    assert "this job is timed-out" in logs and "Requeued job" in logs and "Job completed successfully" in logs


def test_a_failed_task_is_reported_and_its_dependents_are_skipped(tmp_path, capsys):
    bad = Task("tiny/s0/bad", 0, Config("bad", "fails", (Step(str(tmp_path / "a"), (
        "python", "-c", "import sys; sys.exit('bad: error: no such data')")),)))
    after = Task("tiny/s0/after", 0, Config("after", "reads a", (Step(str(tmp_path / "b"), (
        "python", "-c", "open('b','w')", str(tmp_path / "a"))),)), deps=["tiny/s0/bad"])
    failed = run_local([bad, after], "debug", str(tmp_path / "submitit"), Resources())
    out = capsys.readouterr().out
    assert failed == ["tiny/s0/bad", "tiny/s0/after"]
    assert "FAILED tiny/s0/bad" in out and "exited with 1: bad: error: no such data" in out
    assert "skip tiny/s0/after: an input failed" in out


def test_requeue_pickles_the_task_not_the_running_process(tmp_path):
    import pickle
    job = TaskJob(Task("tiny/s0/x", 0, Config("x", "x", (Step(str(tmp_path / "x"), ("python", "-c", "")),))))
    job._proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    proc = job._proc
    again = job.checkpoint()
    assert proc.wait(timeout=30) == -15  # the running CLI was stopped (SIGTERM)
    clone = pickle.loads(pickle.dumps(again))
    assert clone.function.task.id == "tiny/s0/x"


def test_every_set_plans_on_its_own():
    w = Where(runs="r", data="d", threads=2)
    for name, s in SETS.items():
        if name == "taste":
            continue  # asks the runtimes which engine is fastest (tests/test_study_situations covers the preset)
        tasks = plan(name, list(s.seeds), w)
        assert tasks and all(t.config.steps for t in tasks), name
        outs = [o for t in tasks for o in t.outputs]
        assert len(outs) == len(set(outs)), name  # no two tasks write one file


def test_stopping_the_driver_stops_its_tasks(tmp_path):
    """`kill PID` on `python -m study run`: no task's CLI is left running on its own (it would go on writing a run
    folder that the next run resumes from)."""
    import signal
    import time
    pid_file = tmp_path / "cli.pid"
    code = ("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    driver = ("from study.engine import Resources, Task, run_local\nfrom study.registry import Config, Step\n"
              f"t = Task('tiny/s0/sleep', 0, Config('sleep', 'sleeps', (Step({str(tmp_path / 'never')!r}, "
              f"('python', '-c', {code!r}, {str(pid_file)!r})),)))\n"
              f"run_local([t], 'local', {str(tmp_path / 'submitit')!r}, Resources())\n")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT)
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    cli = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    for _ in range(100):
        try:
            os.kill(cli, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the task's CLI outlived the driver")
