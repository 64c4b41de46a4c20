"""The training loop of a prepared `Run`: epochs of steps, the epoch's metrics line and checkpoint, the
collapse guard, and stopping on SIGTERM / SIGINT (`run_loop`).
"""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import torch
import torch.distributed as tdist

from lab.core.collapse import phrase
from lab.core.seeds import STEP_STRIDE, STRIDE, seed_stream
from lab.data.folder import epoch_batches
from lab.engine.metrics import ViewRecorder, all_sum, epoch_line, epoch_row
from lab.engine.optim import set_lr
from lab.engine.run import Run
from lab.engine.runfiles import read_metrics, restore_rng, trim_metrics
from lab.engine.save import save_checkpoint, write_config
from lab.core.schedules import warmup_cosine

DDP_STOP_CHECK_EVERY = 10  # steps between the collective that agrees on a SIGTERM (a GPU sync point)


class _Stop:
    """SIGTERM / SIGINT: finish the step, checkpoint, exit 0.

    A repeated SIGTERM is ignored: on SLURM both the scheduler and torchrun forward it to every worker,
    and acting on the second one would kill a worker before its checkpoint (the runs launcher escalates
    to SIGKILL itself if a stop hangs). A second SIGINT, a person pressing Ctrl-C again, acts as usual.
    """

    def __init__(self):
        self.requested, self.signal_name, self._old = False, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested, self.signal_name = True, signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            # After a SIGTERM stop the process is on its way out with status 0: a forwarded repeat that
            # lands after this block (a tiny step finishes in milliseconds) must not kill it with -15.
            keep_ignoring = sig == signal.SIGTERM and self.signal_name == "SIGTERM" and old == signal.SIG_DFL
            signal.signal(sig, signal.SIG_IGN if keep_ignoring else old)

    def agreed(self, run: Run, step: int, force: bool = False) -> bool:
        """Whether every rank stops now; in DDP a collective every DDP_STOP_CHECK_EVERY steps."""
        if run.world == 1:
            return self.requested
        if not force and step % DDP_STOP_CHECK_EVERY:
            return False
        flag = torch.tensor([1.0 if self.requested else 0.0], device=run.device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag.item())


# ----------------------------------------------------------------------------------------- the run

def run_loop(run: Run) -> dict:
    """Train run from its start state to the end; -> {"status", "epoch", "step", "out", "last"}."""
    start = run.start
    summary = {"out": str(run.out), "epoch": start["epoch"], "step": start["step"]}
    if start["status"] in ("finished", "collapsed"):
        run.files.log(f"run already {start['status']} at epoch {start['epoch']}; nothing to do")
        last = [r for r in read_metrics(run.out / "metrics.jsonl") if r.get("kind") == "epoch"]
        return {**summary, "status": start["status"], "last": last[-1] if last else None}
    _begin(run)
    recorder = view_recorder(run)
    run.ddp.train()
    step, guard, status, last = start["step"], start["guard"], "finished", None
    run.model.resume_at(step / max(run.total_steps, 1))  # e.g. DINO's teacher temperature: not in the weights
    if start["step"] == 0 and not _has_epoch_zero(run):
        # Its own random streams: a run that finds epoch 0 already logged (killed before its first
        # checkpoint) trains exactly as one that has just read it.
        with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
            _epoch_zero(run, recorder)
    with _Stop() as stop:
        for epoch in range(start["epoch"], run.cfg.epochs):
            skip = start["step_in_epoch"] if epoch == start["epoch"] else 0
            acc = start["acc"] if skip and start["acc"] is not None else None
            result = _epoch(run, epoch, step, skip, acc, recorder, stop, start["epoch_time"] if skip else 0.0)
            step = result["step"]
            if result["stopped"]:
                _stop_mid_epoch(run, epoch, step, guard, recorder, result, stop)
                return {**summary, "status": "stopped", "epoch": epoch, "step": step, "last": last}
            last = result["row"]
            guard, collapsed, done = _end_epoch(run, epoch, step, guard, last, recorder)
            if result.get("stop_after") and not done and not collapsed:
                run.files.log(f"{stop.signal_name or 'signal'}: stopped at the end of epoch {epoch + 1}; "
                              f"checkpoint written, the same command resumes")
                run.files.metric({"kind": "end", "status": "stopped", "epoch": epoch + 1, "step": step})
                return {**summary, "status": "stopped", "epoch": epoch + 1, "step": step, "last": last}
            if collapsed:
                status = "collapsed"
                run.files.log(f"collapse guard: {last['collapse_kind']} collapse [{'; '.join(map(phrase, last['collapse_signs']))}] "
                              f"for {guard} epoch(s); stopping as collapsed")
                break
    epoch_done = last["epoch"] if last else start["epoch"]
    run.files.metric({"kind": "end", "status": status, "epoch": epoch_done, "step": step})
    run.files.log(f"{status}: epoch {epoch_done}, step {step}")
    return {**summary, "status": status, "epoch": epoch_done, "step": step, "last": last}


def view_recorder(run: Run) -> ViewRecorder:
    """The recorder of the online encoder's views: pre-BN where the projector ends in a BatchNorm."""
    projector = run.model.encoder.projector
    out_bn = projector[-1] if run.recipe.proj_out_bn else None
    return ViewRecorder(run.model.encoder, run.device, out_bn=out_bn, loss_view=run.model.loss_view)


# Training batches the untrained model is read on (epoch 0): enough views for a stable ‖s‖ and a
# covariance of rank D at every scale (64 × 256 = 16,384 views > D = 2048), a few seconds on a GPU.
EPOCH_ZERO_BATCHES = 64


def _has_epoch_zero(run: Run) -> bool:
    return any(r.get("kind") == "epoch" and r.get("epoch") == 0 for r in read_metrics(run.out / "metrics.jsonl"))


@torch.no_grad()
def _epoch_zero(run: Run, recorder: ViewRecorder) -> None:
    """The untrained model read as the epoch lines read a trained one (its metrics.jsonl line has epoch 0):
    the views of up to EPOCH_ZERO_BATCHES training batches of epoch 0's order, in train mode as the loss
    sees them, and kNN when the run has a val split. The model's buffers (BatchNorm statistics, DINO's
    center, queues) are put back afterwards, so training starts exactly as without this reading."""
    saved = {k: v.clone() for k, v in run.model.named_buffers()}
    began = time.perf_counter()
    recorder.reset()
    run.loader.set_epoch(0)
    n = min(EPOCH_ZERO_BATCHES, run.steps_per_epoch)
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    images = 0
    for i, (images_u8, _) in zip(range(n), run.loader):
        v1, v2 = _views(run, images_u8, 0, i, -(i + 1))  # negative steps: streams no training step uses
        recorder.active = True
        with run.autocast():
            loss, _ = run.model.loss(v1[None], v2[None])
        recorder.active = False
        loss_sum += loss.sum().double() * run.steps_per_epoch / n  # epoch_row averages over steps_per_epoch
        images += images_u8.shape[0] * run.world
    for k, v in run.model.named_buffers():
        v.copy_(saved[k])
    row = epoch_row(run, -1, 0, loss_sum, recorder, 0.0, time.perf_counter() - began, images)
    row["untrained_batches"] = n
    run.files.metric(row)
    run.files.log(epoch_line(row, run.cfg.epochs) + f" (untrained, {n} batches)")
    recorder.reset()


def _begin(run: Run) -> None:
    """Before the first step: metrics.jsonl cut back to the checkpoint, config.json, the first log line,
    and on a resume the random states of the checkpoint."""
    cfg, start = run.cfg, run.start
    dropped = trim_metrics(run.out / "metrics.jsonl", start["epoch"], start["step"]) if run.rank == 0 else 0
    write_config(run)
    if start["step"]:
        run.files.log(f"resuming {cfg.method} from epoch {start['epoch']} step {start['step']} "
                      f"(step {start['step_in_epoch']} of epoch {start['epoch'] + 1}); {dropped} metric lines "
                      f"past the checkpoint dropped")
        restore_rng(start.get("rng"))
    else:
        run.files.log(f"training {cfg.method} on {cfg.data}: {cfg.epochs} epochs x {run.steps_per_epoch} steps, "
                      f"global batch {cfg.batch_size} on {run.world} x {run.device}, image {cfg.image_size} px, "
                      f"base lr {run.base_lr:g}")


def _stop_mid_epoch(run: Run, epoch: int, step: int, guard: int, recorder: ViewRecorder, result: dict,
                    stop: _Stop) -> None:
    """A signal inside the epoch: checkpoint its partial sums, then the "stopped" end line."""
    save_checkpoint(run, epoch, step, result["step_in_epoch"], guard, None, recorder, result["acc"],
                    result["elapsed"])
    run.files.end_bar()
    run.files.log(f"{stop.signal_name or 'signal'}: stopped after step {step} (epoch {epoch + 1}, step "
                  f"{result['step_in_epoch']}/{run.steps_per_epoch}); checkpoint written, the same "
                  f"command resumes")
    run.files.metric({"kind": "end", "status": "stopped", "epoch": epoch, "step": step})


def _end_epoch(run: Run, epoch: int, step: int, guard: int, row: dict,
               recorder: ViewRecorder) -> tuple[int, bool, bool]:
    """The collapse guard, the epoch's metrics line and log line, then its checkpoint (in this order: a
    resume trims lines the checkpoint does not cover). -> (guard, collapsed, last epoch done)."""
    cfg = run.cfg
    # The method's collapse signature (`lab.core.collapse`), read with the guard's threshold for ‖s‖.
    if cfg.collapse_threshold is not None and row.get("collapse_kind"):
        guard += 1
    else:
        guard = 0
    collapsed = cfg.collapse_threshold is not None and guard >= cfg.collapse_patience
    row["collapsed"] = collapsed
    run.files.end_bar()
    run.files.metric(row)
    run.files.log(epoch_line(row, cfg.epochs))
    done = epoch + 1 == cfg.epochs
    state = "collapsed" if collapsed else ("finished" if done else None)
    save_checkpoint(run, epoch + 1, step, 0, guard, state, recorder, None, 0.0)
    return guard, collapsed, done


# ----------------------------------------------------------------------------------------- an epoch

def _epoch(run: Run, epoch: int, step: int, skip: int, acc: dict | None, recorder: ViewRecorder, stop: _Stop,
           elapsed: float) -> dict:
    """One epoch from step `skip` on (a mid-epoch resume). -> {"step", "stopped", "row" | "acc", ...}."""
    cfg = run.cfg
    # The loader's order is fixed by seed and epoch, so starting at batch `skip` continues the same epoch.
    run.loader.set_epoch(epoch, start_batch=skip)
    recorder.reset()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    if acc is not None and run.rank == 0:  # the checkpoint holds all ranks' partial sums, on rank 0
        recorder.load(acc["views"])
        loss_sum += float(acc["loss_sum"])
    n_steps, lr = run.steps_per_epoch, acc["lr"] if acc else 0.0
    began, images = time.perf_counter(), 0
    shown_loss = None
    batches = iter(run.loader)
    stopping = False
    for i in range(skip, n_steps):
        images_u8, _ = next(batches)
        loss, lr = _train_step(run, images_u8, epoch, i, step, recorder)
        step += 1
        loss_sum += loss
        images += images_u8.shape[0] * run.world
        if step % cfg.log_every_steps == 0:
            shown_loss = float(all_sum(loss.clone()) / run.world)
            run.files.metric({"kind": "step", "epoch": epoch + 1, "step": step, "loss": shown_loss,
                              "batch_center_norm": recorder.batch_center_norm(), "lr": lr})
        rate = images / max(time.perf_counter() - began, 1e-9)
        run.files.progress(epoch + 1, cfg.epochs, i + 1, n_steps, rate, shown_loss)
        if stop.agreed(run, step, force=i + 1 == n_steps):
            if i + 1 < n_steps:
                recorder.gather_to_rank0()
                acc = {"loss_sum": float(all_sum(loss_sum.clone())), "lr": lr}
                return {"step": step, "stopped": True, "step_in_epoch": i + 1, "acc": acc,
                        "elapsed": elapsed + time.perf_counter() - began}
            stopping = True
            break
    del batches
    train_seconds = elapsed + time.perf_counter() - began
    row = epoch_row(run, epoch, step, loss_sum, recorder, lr, train_seconds, images)
    if stopping:  # the signal came on the epoch's last step: the epoch is complete, record it, then stop
        return {"step": step, "stopped": False, "row": row, "stop_after": True}
    return {"step": step, "stopped": False, "row": row}


def _train_step(run: Run, images_u8: torch.Tensor, epoch: int, i: int, step: int,
                recorder: ViewRecorder) -> tuple[torch.Tensor, float]:
    """Batch i of the epoch at global step `step`: views, loss, backward, optimizer step, the method's
    after-step update. -> (the loss, detached float64 scalar; the lr used)."""
    lr = _set_lr(run, step)
    v1, v2 = _views(run, images_u8, epoch, i, step)
    # Only the training forward feeds the epoch's view statistics (not kNN or the probe batch).
    recorder.active = True
    recorder.new_step()
    with run.autocast():
        loss = run.ddp(v1[None], v2[None])
    recorder.active = False
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.model.after_step((step + 1) / run.total_steps)
    return loss.detach().double(), lr


def _set_lr(run: Run, step: int) -> float:
    lr = warmup_cosine(step, run.total_steps, run.warmup_steps, run.base_lr)
    set_lr(run.optimizer, lr)  # each group keeps its lr_scale (SimSiam's predictor); fixed_lr groups stay
    return lr


# ----------------------------------------------------------------------------------------- views

def _step_seed(seed: int, step: int, group: int) -> int:
    """The random stream of one augmentation group at one global step (same on any number of ranks)."""
    return seed_stream(seed, step, group, strides=(STRIDE, STEP_STRIDE))


def _views(run: Run, images: torch.Tensor, epoch: int, i: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views of this rank's batch i; each augmentation group draws from its own seeded stream.

    Group q of the global batch is the batch rank q of a G-rank run would load (`_group_positions`),
    so G groups on W ranks (W dividing G) give every image the same views for any W.
    """
    cfg = run.cfg
    x = images.to(run.device, non_blocking=True)
    groups = _group_positions(run, epoch, i, x.shape[0])
    parts1, parts2 = [], []
    for q, pos in groups:
        torch.manual_seed(_step_seed(cfg.seed, step, q))
        v1, v2 = run.augment(x if pos is None else x[pos])
        parts1.append(v1)
        parts2.append(v2)
    v1, v2 = (torch.cat(parts1), torch.cat(parts2)) if len(groups) > 1 else (parts1[0], parts2[0])
    if run.device.type == "cuda" and cfg.channels_last:
        v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
    return v1, v2


def _group_positions(run: Run, epoch: int, i: int, n_loaded: int) -> list[tuple[int, torch.Tensor | None]]:
    """[(group id, positions in this rank's batch)] of the augmentation groups this rank holds.

    The loader strides a permutation over ranks and sorts each batch (lab.data.folder.epoch_batches),
    so a G-rank batch is a subset of this rank's batch when W divides G: rank r holds groups r, r + W, ...
    """
    groups = run.cfg.aug_groups or run.world
    if groups == run.world:
        return [(run.rank, None)]
    key = (epoch, i)
    if run.group_cache.get("key") != key:
        n, b = run.loader.n_images, run.cfg.batch_size
        kw = dict(shuffle=True, drop_last=True, seed=run.cfg.seed, epoch=epoch)
        if run.group_cache.get("epoch") != epoch:
            run.group_cache.clear()
            run.group_cache["epoch"] = epoch
            run.group_cache["local"] = epoch_batches(n, batch_size=b // run.world, rank=run.rank,
                                                     world_size=run.world, **kw)
            run.group_cache["groups"] = {q: epoch_batches(n, batch_size=b // groups, rank=q, world_size=groups, **kw)
                                         for q in range(run.rank, groups, run.world)}
        local = run.group_cache["local"][i]
        if len(local) != n_loaded:  # a batch shortened by corrupt files: no exact grouping left
            return [(run.rank, None)]
        run.group_cache["key"] = key
        run.group_cache["pos"] = [(q, torch.from_numpy(np.searchsorted(local, g[i])).to(run.device))
                                  for q, g in run.group_cache["groups"].items()]
    return run.group_cache["pos"]
