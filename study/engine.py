"""Tasks from the registry, and the job engine that runs them: submitit's local executor (processes on this
machine), its Slurm executor (job arrays on a cluster) or its debug executor (in this process, one after another).

A task is one configuration of one seed: its steps run in order, each skipped when its output exists, a training
step continued with --resume when its run folder holds last.pt. Outputs on disk are the only state, so a task that
is killed, times out or is preempted is simply run again: submitit requeues it (Checkpointable), and the new job
finds the steps already made and the run folder to resume from.
"""
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import submitit

from common.errors import UserError
from study.registry import PUBLISHED, SETS, Where


@dataclass
class Task:
    id: str          # SET/sSEED/CONFIG: stable across runs and machines
    seed: int
    config: object
    deps: list = field(default_factory=list)  # ids of the tasks whose outputs this one reads

    @property
    def outputs(self):
        return [s.out for s in self.config.steps]

    def state(self):
        """'done' (every output exists), 'partial' (some step made or a run folder to resume) or 'todo'."""
        made = [os.path.exists(o) for o in self.outputs]
        if all(made):
            return "done"
        if any(made) or any(os.path.exists(f"{o}.run/last.pt") for o in self.outputs):
            return "partial"
        return "todo"


def study_set(name):
    if name not in SETS:
        raise UserError(f"unknown set {name!r} (one of: {', '.join(SETS)})")
    return SETS[name]


def parse_seeds(text, study):
    """[seed] from '0,1,2', checked against the set: only seeded sets take seeds other than 0."""
    if text is None:
        return list(study.seeds)
    seeds = []
    for part in text.split(","):
        if not part.strip().isdigit() or len(part.strip()) > 9:
            raise UserError(f"--seeds {text!r}: expected non-negative integers separated by commas (e.g. 0,1,2)")
        seeds.append(int(part))
    if not study.seeded and seeds != [0]:
        raise UserError(f"set {study.name!r} has one seed (0); --seeds {text!r} names others")
    return sorted(set(seeds))


def plan(name, seeds, where):
    """The tasks of a set for these seeds, in an order where every task comes after the tasks it reads from. A step
    shared by several seeds (the published weights) is one task, the first seed's."""
    study = study_set(name)
    tasks, writer = [], {}  # writer: output path -> id of the task that makes it
    for seed in seeds:
        for config in study.configs(where, seed):
            if all(o in writer for o in (s.out for s in config.steps)):
                continue
            task = Task(f"{name}/s{seed}/{config.name}", seed, config)
            for s in config.steps:
                writer[s.out] = task.id
            tasks.append(task)
    by_id = {t.id: t for t in tasks}
    for t in tasks:
        own = set(t.outputs)
        t.deps = sorted({writer[a] for s in t.config.steps for a in s.argv if a in writer and a not in own})
        missing = [d for d in t.deps if d not in by_id]
        assert not missing, (t.id, missing)
    return tasks


def levels(tasks):
    """{task id: depth}: 0 for a task that reads no other task's output, else one more than its deepest input."""
    depth = {}
    for t in tasks:  # plan() orders inputs first
        depth[t.id] = 1 + max((depth[d] for d in t.deps if d in depth), default=-1)
    return depth


def resolve(argv):
    """The argv a step runs: this interpreter for `python`, the verified file for pretrained:NAME."""
    out = []
    for a in argv:
        if a == "python":
            a = sys.executable
        elif a.startswith(PUBLISHED):
            from models.pretrained import published  # imports torch: only for the steps that need it
            a = published(a[len(PUBLISHED):])
        out.append(a)
    return out


def die_with_parent():
    """In the child before exec (Linux): SIGTERM when the job process that started it dies."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TaskFailed(Exception):
    pass


def copy_lines(source, sink, last):
    """Copy a CLI's stderr into this job's, keeping its last non-empty line in last[0]."""
    for line in source:
        sink.write(line)
        sink.flush()
        if line.strip():
            last[:] = [line.strip()[:300]]


class TaskJob(submitit.helpers.Checkpointable):
    """One task as a submitit job. On a timeout or preemption signal submitit calls checkpoint(): the running CLI
    is stopped (its run folder keeps every finished epoch) and the same task is queued again."""

    def __init__(self, task):
        self.task = task
        self._proc = None

    def __call__(self):
        # One job per task at a time, whoever started it (two `study run` on one runs folder): the second waits for
        # the first, then finds the outputs made. flock is released when its holder dies, so no lock outlives a kill.
        out = self.task.config.out
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(os.path.join(os.path.dirname(out) or ".", f".{os.path.basename(out)}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._steps()

    def _steps(self):
        for s in self.task.config.steps:
            if os.path.exists(s.out):
                continue
            argv = resolve(s.argv)
            if os.path.exists(f"{s.out}.run/last.pt"):
                argv.append("--resume")
            os.makedirs(os.path.dirname(s.out) or ".", exist_ok=True)
            print(f"[run ] {s.out}: {' '.join(argv)}", flush=True)
            # In the job's process group (Ctrl-C, and `kill -STOP -- -PGID` to pause a run, reach it), and stopped
            # with the job even when the job is killed outright (SIGKILL runs no cleanup).
            self._proc = subprocess.Popen(argv, preexec_fn=die_with_parent, stderr=subprocess.PIPE, text=True,
                                          errors="replace")
            last = []  # the CLI's last stderr line: a refusal is one line, and it names the reason
            tee = threading.Thread(target=copy_lines, args=(self._proc.stderr, sys.stderr, last), daemon=True)
            tee.start()
            try:
                code = self._proc.wait()
            finally:
                self._stop()
            tee.join(timeout=5)
            if code != 0:
                why = f": {last[0]}" if last else ""
                what = s.argv[2] if s.argv[1:2] == ("-m",) else s.argv[0]
                raise TaskFailed(f"{what} --out {s.out} exited with {code}{why}")
        return self.task.id

    def _stop(self):
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def checkpoint(self, *args, **kwargs):
        # Called inside the signal handler, while __call__ waits on the CLI (holding Popen's wait lock): signal it
        # here, and let __call__'s `finally` reap it when submitit's exit unwinds that wait.
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        return submitit.helpers.DelayedSubmission(TaskJob(self.task))

    def __getstate__(self):  # a running process does not travel in the pickle of a requeued job
        return {"task": self.task, "_proc": None}


@dataclass
class Resources:
    """What a job asks of the engine."""
    workers: int = 1           # local: jobs at once
    threads: int = 1           # per job (its CLIs' --threads, Slurm's cpus-per-task)
    timeout_min: float = 24 * 60
    signal_delay_s: int = 120  # the timeout signal comes this long before the end: time to stop and requeue
    max_num_timeout: int = 20  # requeues on timeout before a task counts as failed
    partition: str = ""
    gpus: int = 0
    mem_gb: int = 0
    array_parallelism: int = 64
    account: str = ""


def executor(kind, folder, res, exclusive=False, name="study"):
    if kind == "debug":
        return submitit.DebugExecutor(folder)
    if kind == "local":
        ex = submitit.LocalExecutor(folder, max_num_timeout=res.max_num_timeout)
        ex.update_parameters(timeout_min=res.timeout_min, signal_delay_s=res.signal_delay_s)
        return ex
    if kind == "slurm":
        try:
            ex = submitit.SlurmExecutor(folder, max_num_timeout=res.max_num_timeout)
        except RuntimeError as e:  # no srun on PATH: not a Slurm login node
            raise UserError(f"--executor slurm: {e}") from None
        optional = {"partition": res.partition, "account": res.account, "gpus_per_node": res.gpus,
                    "mem": f"{res.mem_gb}G" if res.mem_gb else "", "exclusive": exclusive}
        # --requeue: Slurm may requeue the job itself (node failure, preemption in requeue mode); submitit requeues
        # it on the timeout signal, which comes signal_delay_s before the time limit.
        ex.update_parameters(job_name=name, time=max(1, int(res.timeout_min)), cpus_per_task=res.threads,
                             ntasks_per_node=1, nodes=1, signal_delay_s=res.signal_delay_s,
                             array_parallelism=res.array_parallelism, additional_parameters={"requeue": True},
                             **{k: v for k, v in optional.items() if v})
        return ex
    raise UserError(f"unknown executor {kind!r} (local, slurm or debug)")


def say(text):
    print(text, flush=True)


def run_local(tasks, kind, folder, res):
    """Run the tasks not done yet, at most res.workers at once, each as soon as its inputs exist. Returns the ids of
    the tasks that failed (and of those that could not start because an input failed)."""
    todo = [t for t in tasks if t.state() != "done"]
    total, failed = len(todo), []
    done = {t.id for t in tasks} - {t.id for t in todo}
    running = {}  # id -> (job, task, start)
    say(f"[study] {total} of {len(tasks)} tasks to run ({len(done)} already made), {res.workers} at once, "
        f"{res.threads} thread(s) each")
    ex = executor(kind, folder, res)
    workers = 1 if kind == "debug" else res.workers
    stop_on_term = threading.current_thread() is threading.main_thread()
    if stop_on_term:  # `kill PID` stops the running tasks too, as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, lambda *a: sys.exit(128 + signal.SIGTERM))
    try:
        return _schedule(todo, running, done, failed, total, ex, kind, workers)
    finally:
        if stop_on_term:
            signal.signal(signal.SIGTERM, previous)
        for job, _, _ in running.values():  # left running only when this loop was interrupted
            stop_job(job)


def stop_job(job):
    """Kill a local job's controller and everything under it (its task's CLI gets SIGTERM as its parent dies)."""
    process = getattr(job, "_process", None)
    if process is None or process.poll() is not None:
        return
    for pid in [*descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


def descendants(pid):
    """Every process under pid, deepest first (Linux /proc; none elsewhere)."""
    children = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out[::-1]


def _schedule(todo, running, done, failed, total, ex, kind, workers):
    finished = 0
    while todo or running:
        for t in list(todo):
            if any(d in failed for d in t.deps):
                todo.remove(t)
                failed.append(t.id)
                finished += 1
                say(f"[{finished}/{total}] skip {t.id}: an input failed")
            elif len(running) < workers and all(d in done for d in t.deps):
                todo.remove(t)
                job = ex.submit(TaskJob(t))
                running[t.id] = (job, t, time.time())
                say(f"[start] {t.id} ({t.state()})" + (f" job {job.job_id}" if kind != "debug" else ""))
        if not running:
            if todo:  # inputs that no task makes and that do not exist
                for t in todo:
                    failed.append(t.id)
                    say(f"[skip] {t.id}: waits on {', '.join(d for d in t.deps if d not in done)}")
                todo = []
            break
        for tid, (job, t, start) in list(running.items()):
            if kind != "debug" and not job.done():
                continue
            del running[tid]
            finished += 1
            minutes = (time.time() - start) / 60
            try:
                job.result()
            except Exception as e:  # noqa: BLE001 -- a failed job is reported, the others go on
                failed.append(tid)
                last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                say(f"[{finished}/{total}] FAILED {tid} after {minutes:.1f} min: {last} (log: {job_log(job)})")
                continue
            done.add(tid)
            say(f"[{finished}/{total}] done {tid} in {minutes:.1f} min")
        if kind != "debug":
            time.sleep(1)
    return failed


def job_log(job):
    try:
        return str(job.paths.stdout)
    except Exception:  # noqa: BLE001 -- the debug executor has no log files
        return "-"


def submit_slurm(tasks, folder, res, ex=None):
    """Every task not done yet as Slurm job arrays, one per dependency depth, each depth starting after the one
    before has ended (afterany: a task whose input failed stops at once with one line). Returns [(depth, array
    job id, task ids)]."""
    todo = [t for t in tasks if t.state() != "done"]
    depth = levels(todo)
    ex = ex or executor("slurm", folder, res)
    arrays, previous = [], None
    for level in sorted(set(depth.values())):
        batch = [t for t in todo if depth[t.id] == level]
        if previous:
            ex.update_parameters(dependency=f"afterany:{previous}")
        with ex.batch():
            jobs = [ex.submit(TaskJob(t)) for t in batch]
        previous = jobs[0].job_id.split("_")[0]
        arrays.append((level, previous, [t.id for t in batch]))
        say(f"[slurm] depth {level}: array {previous}, {len(batch)} task(s)")
    return arrays


def default_where(runs, data, threads, bf16=None):
    from common.machine import cpu_has_native_bf16
    runs, data = (f"./{p}" if p.startswith("-") else p for p in (runs, data))  # never read as an option by a CLI
    return Where(runs=runs, data=data, threads=threads, cpu_bf16=cpu_has_native_bf16() if bf16 is None else bf16)
