"""The GPU measurements of issues 8 and 16 in one call, under one time budget, as one JSON file.

Runs the benchmark scripts (and two small probes of its own) one after another, each in its
own process session with its own timeout, in priority order:

1. ``environment``: GPU, driver, CPU, torch / CUDA / cuDNN / Ray / transformers versions, and
   the GPU JPEG decoder packages (nvidia-nvimgcodec-cu12, torchvision).
2. ``model_b0_1024_eager``, ``model_b5_1800_eager`` (``model_throughput.py``: bf16,
   channels_last, batch 32 / 8) and, with ``--compile``, the ``*_compiled`` twins: the ceilings.
3. ``decode_gpu`` (``gpu_decode_throughput.py``): nvJPEG decode (+ resize at 1024 / 1800) of
   SA-1B-sized JPEGs per available decoder, img/s and the host CPU-ms it still costs; threshold
   + bit packing on the device and the host RLE from packed bits.
4. ``labeling_b0_1024_gpu_decode``, ``labeling_b0_1024``, ``labeling_b5_1800_gpu_decode``,
   ``labeling_b5_1800`` (``labeling_throughput.py``): the Ray Data pipeline end to end on
   SA-1B-sized JPEGs with JPEG bytes decoded in the actors (``--image-decode gpu``) and with
   CPU decode tasks, each with the model-only and serial-loop figures of the same model path
   and their ratios, measured in the same run.
5. ``train_b0_1024`` (``train_throughput.py``): the Ray Train loop with its real input pipeline
   vs a bare bf16 loop, B0 @ 1024, batch 8.
6. ``decode_cpu``: JPEG decode + resize (and decode + resize + SA-1B boundary target) of an
   SA-1B-sized image on one CPU core and on all cores, img/s: what bounds the CPU side.
7. ``cpu_budget`` (``cpu_budget.py``): CPU-ms per image and stage on this node's cores, and
   the cores per GPU each target needs (docs/SIZING.md).
8. With ``--compile``: ``labeling_b5_1800_compiled`` (the pipeline on the compiled model).

The SA-1B-sized sample (default 1500 x 2250, ~100 masks per image) is generated here: a pool
of ``--unique-images`` images by ``directsam.data.sample.make_sample`` (the code behind
``directsam make-sample --height H --width W``), one process per core, then linked under
consecutive ids to the size each benchmark wants (decode cost per image is the same).

An item that fails, times out or no longer fits in ``--budget-s`` is recorded with its reason
(``skip_reason``) and the suite goes on; the JSON (``--output``) is rewritten after every
item, so a suite killed from outside still leaves what it measured. ``--dry-run`` runs the
same plan on CPU with tiny sizes (``scratch:b0`` at 64 px, a few small images), for tests.

    python benchmarks/gpu_suite.py --output results.json            # GPU node, ~5-7 min
    python benchmarks/gpu_suite.py --output results.json --compile  # + compiled ceilings
    python benchmarks/gpu_suite.py --dry-run --budget-s 120 --output /tmp/dry.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PY = sys.executable
TAIL = 1500  # characters of stderr kept with a failure


# ----------------------------------------------------------------------------- plan


@dataclass
class Item:
    """One measurement: a command run in its own process session.

    ``argv`` may contain ``{work}`` (the item's scratch folder) and ``{sample}`` (its
    generated sample, ``sample_images`` images); ``figures`` picks the headline numbers out
    of the script's JSON.
    """

    name: str
    what: str
    argv: list[str]
    timeout_s: float
    min_s: float
    figures: Callable[[dict], dict]
    sample_images: int = 0
    result_file: bool = False  # the script writes its JSON to {work}/result.json


def _model_figures(r: dict) -> dict:
    return {k: r[k] for k in ("model_img_per_s", "with_upsample_img_per_s",
                              "model_ms_per_batch_median", "batch", "dtype", "device_name")}  # fmt: skip


def _labeling_figures(r: dict) -> dict:
    out = {
        "pipeline_img_per_s": r["pipeline"]["img_per_s"],
        "pipeline_steady_img_per_s": r["pipeline"]["steady_img_per_s"],
        "model_only_img_per_s": r["model_only"]["img_per_s"],
        "serial_img_per_s": r["serial"]["img_per_s"],
    }
    out.update({k: v for k, v in r.items() if k.startswith("ratio_")})
    return out


def _train_figures(r: dict) -> dict:
    out = {"bare_img_per_s": r["bare"]["images_per_s"]}
    if "ray" in r:
        out["bare_after_img_per_s"] = r["bare_after"]["images_per_s"]
        out["ray_img_per_s"] = r["ray"]["images_per_s"]
        out["ratio_ray_over_bare"] = r["ratio_ray_over_bare"]
    out["target_on_the_fly_ms"] = r["targets"]["target_on_the_fly_ms"]
    out["image_decode_resize_ms"] = r["targets"]["image_decode_resize_ms"]
    return out


def _gpu_decode_figures(r: dict) -> dict:
    dec, post = r["decode"], r["postprocess"]
    out: dict[str, Any] = {"decoders": dec["available"], "cuda": dec["cuda"]}
    for name, row in dec["decoders"].items():
        if "error" in row:
            out[f"{name}_error"] = row["error"]
            continue
        for key, fig in row.items():
            if isinstance(fig, dict):
                out[f"{name}_{key}_img_per_s"] = fig["per_s"]
                out[f"{name}_{key}_host_cpu_ms"] = fig["host_cpu_ms_per_item"]
        out[f"{name}_vs_pillow_mean_abs"] = row["vs_pillow_mean_abs"]
    for key, fig in dec["pillow_one_thread"].items():
        out[f"pillow_{key}_img_per_s"] = fig["per_s"]
    for res, row in post.items():
        if isinstance(row, dict):
            for key, fig in row.items():
                out[f"post_{res}_{key}_per_s"] = fig["per_s"]
    return out


def _budget_figures(r: dict) -> dict:
    out = {f"{k}@{res}": v for res, row in r["cpu_ms_per_image"].items() for k, v in row.items()}
    for row in r["cores_per_gpu"]:
        out[f"cores_per_gpu {row['job']} {row['path']}"] = row["cores_per_gpu"]
    return out


def _decode_figures(r: dict) -> dict:
    out = {"processes": r["processes"]}
    for res, v in r["resolutions"].items():
        for k in ("per_core_img_per_s", "all_cores_img_per_s", "per_core_with_target_img_per_s"):
            out[f"{k}@{res}"] = v[k]
    return out


def _env_figures(r: dict) -> dict:
    keys = ("gpu", "torch", "cuda", "ray", "transformers", "cpu_count", "gpu_jpeg_decoders")
    return {k: r.get(k) for k in keys}


def build_plan(args: argparse.Namespace) -> list[Item]:
    """The items in priority order; ``--dry-run`` keeps the plan and shrinks every size."""
    dry = args.dry_run
    dev = ["--device", "cpu"] if dry else ["--device", "cuda", "--dtype", "bf16"]
    b0, b5 = "scratch:b0", ("scratch:b0" if dry else "scratch:b5")
    r_b0, r_b5 = (64, 64) if dry else (1024, 1800)
    batch_b0, batch_b5 = (2, 2) if dry else (32, 8)
    image_hw = ["96", "128"] if dry else [str(args.image_size[0]), str(args.image_size[1])]
    cpu_threads = ["--threads", "1"] if dry else []
    t = (lambda gpu_s, dry_s: dry_s) if dry else (lambda gpu_s, dry_s: gpu_s)

    def model(name: str, spec: str, res: int, batch: int, compiled: bool) -> Item:
        iters = ["--warmup", "1", "--iters", "2"] if dry else ["--warmup", "3", "--iters", "15"]
        argv = [PY, str(BENCH / "model_throughput.py"), "--checkpoint", spec,
                "--resolution", str(res), "--batch", str(batch), *dev, *iters, *cpu_threads]  # fmt: skip
        return Item(
            name,
            f"model only {spec} @ {res}, batch {batch}, channels_last, "
            + ("compiled" if compiled else "eager"),
            argv + (["--compile"] if compiled else []),
            timeout_s=t(300 if compiled else 150, 90),
            min_s=t(90 if compiled else 30, 10),
            figures=_model_figures,
        )

    def labeling(name: str, spec: str, res: int, batch: int, n: int, serial: int, c: bool,
                 gpu_decode: bool = False) -> Item:  # fmt: skip
        # The dry run has no CUDA actors: "auto" resolves to the CPU path there.
        decode = ("auto" if dry else "gpu") if gpu_decode else "cpu"
        argv = [PY, str(BENCH / "labeling_throughput.py"), "--checkpoint", spec,
                "--resolution", str(res), "--batch", str(batch), *dev,
                "--num-images", str(n), "--image-size", *image_hw,
                "--serial-images", str(serial), "--image-decode", decode, "--workdir", "{work}",
                "--output", "{work}/result.json"]  # fmt: skip
        if dry:
            argv += ["--num-cpus", "2", "--warmup", "1", *cpu_threads]
        return Item(
            name,
            f"labeling end to end {spec} @ {res}, batch {batch}, {n} images "
            f"{'x'.join(image_hw)}, vs model-only and serial loop"
            + (", compiled" if c else "")
            + (", JPEG bytes decoded in the actors (nvJPEG)" if gpu_decode else ", CPU decode"),
            argv + (["--compile"] if c else []),
            timeout_s=t(300 if c else 200, 120),
            min_s=t(120 if c else 60, 20),
            figures=_labeling_figures,
            sample_images=n,
            result_file=True,
        )

    warm, steps, batch_t = (1, 2, 2) if dry else (5, 40, 8)
    train_n = (warm + steps) * batch_t + (4 if dry else 8)
    train_argv = [PY, str(BENCH / "train_throughput.py"), "--device", "cpu" if dry else "cuda",
                  "--init", b0, "--resolution", str(r_b0), "--batch-size", str(batch_t),
                  "--precision", "fp32" if dry else "bf16", "--warmup", str(warm),
                  "--steps", str(steps), "--data", "{sample}", "--num-images", str(train_n),
                  "--cpus-per-worker", "1" if dry else "2",
                  "--output", "{work}/result.json"]  # fmt: skip
    if dry:
        train_argv += ["--target-hw", *image_hw, "--target-resolution", "64",
                       "--target-images", "1", "--target-repeats", "1", "--target-masks", "5"]  # fmt: skip
    decode_argv = [PY, str(Path(__file__).resolve()), "--internal", "decode_cpu",
                   "--sample", "{sample}", "--output", "{work}/result.json",
                   "--resolutions", *(["64", "96"] if dry else ["1024", "1800"]),
                   "--processes", "2" if dry else str(os.cpu_count() or 1),
                   "--seconds", "0.5" if dry else "2"]  # fmt: skip

    plan = [
        Item(
            "environment",
            "GPU, driver, CPU and package versions",
            [
                PY,
                str(Path(__file__).resolve()),
                "--internal",
                "environment",
                "--output",
                "{work}/result.json",
            ],
            timeout_s=60,
            min_s=5,
            figures=_env_figures,
            result_file=True,
        ),  # fmt: skip
        model("model_b0_1024_eager", b0, r_b0, batch_b0, False),
        model("model_b5_1800_eager", b5, r_b5, batch_b5, False),
    ]
    if args.compile:
        plan += [
            model("model_b0_1024_compiled", b0, r_b0, batch_b0, True),
            model("model_b5_1800_compiled", b5, r_b5, batch_b5, True),
        ]
    gpu_decode_argv = [PY, str(BENCH / "gpu_decode_throughput.py"), "--sample", "{sample}",
                       "--resolutions", *(["64", "96"] if dry else ["1024", "1800"]),
                       "--batch", "4" if dry else "32", "--post-batch", "2" if dry else "8",
                       "--seconds", "0.3" if dry else "3", "--output", "{work}/result.json"]  # fmt: skip
    budget_argv = [PY, str(BENCH / "cpu_budget.py"), "--output", "{work}/result.json"]
    if dry:
        budget_argv += ["--images", "1", "--repeats", "1", "--image-size", *image_hw,
                        "--resolutions", "64", "--objects", "6", "--parquet-rows", "4"]  # fmt: skip
    n_b0, s_b0 = (6, 2) if dry else (1024, 64)
    n_b5, s_b5 = (6, 2) if dry else (256, 24)
    plan += [
        Item(
            "decode_gpu",
            "nvJPEG decode (+ resize) per GPU decoder and device threshold + bit packing",
            gpu_decode_argv,
            timeout_s=t(120, 60),
            min_s=t(30, 5),
            figures=_gpu_decode_figures,
            sample_images=4 if dry else 32,
            result_file=True,
        ),  # fmt: skip
        labeling("labeling_b0_1024_gpu_decode", b0, r_b0, batch_b0, n_b0, s_b0, False, True),
        labeling("labeling_b0_1024", b0, r_b0, batch_b0, n_b0, s_b0, False),
        labeling("labeling_b5_1800_gpu_decode", b5, r_b5, batch_b5, n_b5, s_b5, False, True),
        labeling("labeling_b5_1800", b5, r_b5, batch_b5, n_b5, s_b5, False),
        Item(
            "train_b0_1024",
            f"training Ray loop (real input pipeline) vs bare loop, {b0} @ {r_b0}, batch "
            f"{batch_t}, {warm} warm-up + {steps} timed steps",
            train_argv,
            timeout_s=t(300, 150),
            min_s=t(90, 30),
            figures=_train_figures,
            sample_images=train_n,
            result_file=True,
        ),  # fmt: skip
        Item(
            "decode_cpu",
            "JPEG decode + resize of an SA-1B-sized image, per core and all cores",
            decode_argv,
            timeout_s=t(120, 60),
            min_s=t(20, 5),
            figures=_decode_figures,
            sample_images=4 if dry else 16,
            result_file=True,
        ),  # fmt: skip
        Item(
            "cpu_budget",
            "CPU-ms per image and stage (read, decode, resize, targets, RLE, Parquet) and "
            "cores per GPU for the issue-16 anchors, on this node's CPU",
            budget_argv,
            timeout_s=t(240, 60),
            min_s=t(60, 5),
            figures=_budget_figures,
            result_file=True,
        ),  # fmt: skip
    ]
    if args.compile:
        plan.append(labeling("labeling_b5_1800_compiled", b5, r_b5, batch_b5,
                             6 if dry else 256, 2 if dry else 24, True))  # fmt: skip
    return plan


# ----------------------------------------------------------------------------- sample


def _one_scene(job: tuple[str, int, int, int]) -> str:
    from directsam.data.sample import make_sample

    out, seed, h, w = job
    return str(make_sample(out, num_images=1, seed=seed, kind="sa1b", height=h, width=w))


def make_pool(folder: Path, unique: int, height: int, width: int, processes: int) -> list[Path]:
    """``unique`` distinct SA-1B-format images (seeds 0..unique-1), one process per core."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(str(folder / f"u{k:04d}"), k, height, width) for k in range(unique)]
    with ProcessPoolExecutor(max_workers=max(1, min(processes, unique))) as pool:
        roots = list(pool.map(_one_scene, jobs))
    return [Path(r) / "sa_000000" / "sa_1.jpg" for r in roots]


def link_sample(pool: list[Path], output: Path, num_images: int, per_folder: int = 64) -> Path:
    """An SA-1B folder layout of ``num_images`` images ``sa_1..sa_N`` cycling through ``pool``
    (JPEGs hard-linked, or copied across file systems; JSON ``image`` entry renamed)."""
    if output.exists():
        shutil.rmtree(output)
    for i in range(num_images):
        jpg = pool[i % len(pool)]
        number = i + 1
        folder = output / f"sa_{i // per_folder:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"sa_{number}.jpg"
        try:
            os.link(jpg, target)
        except OSError:
            shutil.copyfile(jpg, target)
        doc = json.loads(jpg.with_suffix(".json").read_bytes())
        doc["image"]["image_id"] = number
        doc["image"]["file_name"] = target.name
        (folder / f"sa_{number}.json").write_text(json.dumps(doc))
    return output


# ----------------------------------------------------------------------------- running


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (our item's own process session, Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _end_session(sid: int, grace_s: float = 10.0) -> None:
    """SIGTERM then SIGKILL every process still in session ``sid`` (all started by this item)."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        pids = _session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _session_pids(sid):
            time.sleep(0.2)


def run_command(argv: list[str], timeout_s: float, log_dir: Path, env: dict | None = None) -> dict:
    """Run ``argv`` in a new process session; on timeout end the whole session.

    Returns ``{rc, timed_out, wall_s, stdout, stderr_tail}``; never raises for the command's
    own failure.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT, env=env,
            start_new_session=True,
        )  # fmt: skip
        timed_out = False
        try:
            proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            timed_out = True
            _end_session(proc.pid)
            proc.wait()
        # Whatever the command left behind in its session (e.g. a Ray worker) goes too.
        _end_session(proc.pid, grace_s=5.0)
    wall = time.perf_counter() - start
    stderr = err_path.read_text(errors="replace")
    return {
        "rc": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 2),
        "stdout": out_path.read_text(errors="replace"),
        "stderr_tail": stderr[-TAIL:],
    }


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _item_env() -> dict:
    env = dict(os.environ)
    # The scripts import directsam from this checkout (also Ray workers, which inherit it).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Suite:
    """Runs a plan against a deadline and keeps the JSON report current."""

    def __init__(self, args: argparse.Namespace, plan: list[Item], work: Path) -> None:
        self.args, self.plan, self.work = args, plan, work
        self.start = time.perf_counter()
        self.deadline = self.start + args.budget_s
        self.pool: list[Path] | None = None
        self.pool_error: str | None = None
        self.report: dict[str, Any] = {
            "suite": "gpu_suite",
            "issues": [8, 16],
            "dry_run": args.dry_run,
            "compile": args.compile,
            "budget_s": args.budget_s,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": shlex.join([sys.executable, *sys.argv]),
            "host": platform.node(),
            "environment": {},
            "sample": {"image_size": self._image_hw(), "unique_images": args.unique_images},
            "items": [
                {
                    "name": it.name,
                    "what": it.what,
                    "status": "pending",
                    "figures": {},
                    "skip_reason": None,
                }
                for it in plan
            ],  # fmt: skip
        }
        self.write()

    def _image_hw(self) -> list[int]:
        return [96, 128] if self.args.dry_run else list(self.args.image_size)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def write(self) -> None:
        self.report["wall_s"] = round(time.perf_counter() - self.start, 2)
        out = Path(self.args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(self.report, indent=2) + "\n")
        os.replace(tmp, out)

    def sample_for(self, item: Item) -> Path:
        if self.pool is None and self.pool_error is None:
            t0 = time.perf_counter()
            h, w = self._image_hw()
            unique = self.args.unique_images
            try:
                self.pool = make_pool(self.work / "pool", unique, h, w, os.cpu_count() or 1)
            except Exception as err:  # noqa: BLE001 - reported per item, the suite goes on
                self.pool_error = f"sample generation failed: {type(err).__name__}: {err}"
            self.report["sample"]["pool_wall_s"] = round(time.perf_counter() - t0, 2)
            self.report["sample"]["command_equivalent"] = (
                f"directsam make-sample --kind sa1b --height {h} --width {w} --num-images 1 "
                f"--seed K --output POOL/uK  (K = 0..{unique - 1}, then linked as sa_1..sa_N)"
            )
        if self.pool_error:
            raise RuntimeError(self.pool_error)
        assert self.pool is not None
        return link_sample(self.pool, self.work / item.name / "sample", item.sample_images)

    def run_item(self, index: int, item: Item) -> None:
        entry = self.report["items"][index]
        left = self.left()
        if left < item.min_s:
            entry.update(status="skipped",
                         skip_reason=f"budget: {left:.0f} s of --budget-s {self.args.budget_s:g} "
                                     f"left, item needs at least {item.min_s:g} s")  # fmt: skip
            return
        work = self.work / item.name
        work.mkdir(parents=True, exist_ok=True)
        subs = {"work": str(work)}
        if item.sample_images:
            t0 = time.perf_counter()
            try:
                subs["sample"] = str(self.sample_for(item))
            except Exception as err:  # noqa: BLE001
                entry.update(status="skipped", skip_reason=f"no sample: {err}")
                return
            entry["sample_wall_s"] = round(time.perf_counter() - t0, 2)
        argv = list(item.argv)
        for key, value in subs.items():  # literal, so other braces in argv stay as they are
            argv = [a.replace("{" + key + "}", value) for a in argv]
        timeout = min(item.timeout_s, self.left())
        entry["command"] = shlex.join(argv)
        entry["timeout_s"] = round(timeout, 1)
        print(f"[gpu_suite] {item.name}: {entry['command']}", file=sys.stderr, flush=True)
        run = run_command(argv, timeout, work / "logs", env=_item_env())
        entry["wall_s"], entry["rc"] = run["wall_s"], run["rc"]
        result = None
        if item.result_file and (work / "result.json").exists():
            result = _last_json((work / "result.json").read_text())
        if result is None:
            result = _last_json(run["stdout"])
        if run["timed_out"]:
            entry.update(status="timeout",
                         skip_reason=f"timeout after {timeout:.0f} s; stderr tail: "
                                     f"{run['stderr_tail'][-400:]}")  # fmt: skip
        elif run["rc"] != 0 or result is None:
            entry.update(status="failed",
                         skip_reason=f"exit code {run['rc']}" + ("" if result is not None else
                                     ", no JSON result") + f"; stderr tail: {run['stderr_tail']}")  # fmt: skip
        else:
            try:
                figures = item.figures(result)
            except (KeyError, TypeError) as err:
                entry.update(status="failed", skip_reason=f"result lacks {err}", result=result)
                return
            entry.update(status="ok", figures=figures, result=result)
            if item.name == "environment":
                self.report["environment"] = result
        print(f"[gpu_suite] {item.name}: {entry['status']} ({run['wall_s']} s) "
              f"{entry.get('figures') or entry.get('skip_reason', '')[:300]}",
              file=sys.stderr, flush=True)  # fmt: skip


# ----------------------------------------------------------------------------- summary

TARGETS = {  # issues 8/16: labeling item -> (model ceiling items, img/s target, ratio target)
    "labeling_b5_1800": (["model_b5_1800_compiled", "model_b5_1800_eager"], 35.0, 0.85),
    "labeling_b0_1024": (["model_b0_1024_compiled", "model_b0_1024_eager"], 850.0, 0.85),
    "labeling_b5_1800_gpu_decode": (["model_b5_1800_compiled", "model_b5_1800_eager"], 35.0, 0.85),
    "labeling_b0_1024_gpu_decode": (["model_b0_1024_compiled", "model_b0_1024_eager"], 850.0, 0.85),
}


def summarize(items: list[dict]) -> dict:
    """Measured figures against issue 8's targets (only what was measured)."""
    by = {i["name"]: i for i in items}
    out: dict[str, Any] = {}
    for name, (ceilings, target, ratio_target) in TARGETS.items():
        for suffix in ("", "_compiled"):
            lab = by.get(name + suffix)
            if not lab or lab["status"] != "ok":
                continue
            got = lab["figures"]["pipeline_steady_img_per_s"]
            row: dict[str, Any] = {"img_per_s_steady": got, "target_img_per_s": target,
                                   "end_to_end_img_per_s": lab["figures"]["pipeline_img_per_s"]}  # fmt: skip
            for c in ceilings:
                if by.get(c, {}).get("status") == "ok":
                    ceil = by[c]["figures"]["model_img_per_s"]
                    row.update(ceiling=c, ceiling_img_per_s=ceil,
                               ratio_to_ceiling=round(got / ceil, 3), ratio_target=ratio_target)  # fmt: skip
                    break
            out[name + suffix] = row
    train = by.get("train_b0_1024")
    if train and train["status"] == "ok" and "ratio_ray_over_bare" in train["figures"]:
        out["train_b0_1024"] = {"ratio_ray_over_bare": round(train["figures"]
                                ["ratio_ray_over_bare"], 3), "ratio_target": 0.9}  # fmt: skip
    out["statuses"] = {i["name"]: i["status"] for i in items}
    return out


# ----------------------------------------------------------------------------- probes


def probe_environment() -> dict:
    """Versions and hardware, from a process of its own (CUDA is initialised only here)."""
    from importlib import metadata

    info: dict[str, Any] = {"python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    for pkg in ("torch", "ray", "transformers", "numpy", "opencv-python-headless", "pyarrow",
                "pycocotools", "triton", "pillow", "torchvision", "nvidia-nvimgcodec-cu12",
                "nvidia-nvjpeg-cu12"):  # fmt: skip
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg] = None
    import torch

    info["cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["gpu_count"] = torch.cuda.device_count()
        info["cudnn"] = torch.backends.cudnn.version()
    else:
        info["gpu"] = None
    from directsam.inference.gpu_decode import available_decoders

    info["gpu_jpeg_decoders"] = available_decoders()
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        info["nvidia_smi"] = smi.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def _decode_worker(job: tuple[list[str], int, int, float]) -> tuple[int, float]:
    """Decode + resize ``paths`` round-robin for ``seconds`` on one thread; (images, wall)."""
    import cv2

    from directsam.data.decode import decode_image, resize_rgb

    cv2.setNumThreads(1)
    paths, res, min_images, seconds = job
    blobs = [Path(p).read_bytes() for p in paths]
    n, t0 = 0, time.perf_counter()
    while n < min_images or time.perf_counter() - t0 < seconds:
        resize_rgb(decode_image(blobs[n % len(blobs)]), res)
        n += 1
    return n, time.perf_counter() - t0


def probe_decode(sample: Path, resolutions: list[int], processes: int, seconds: float) -> dict:
    """img/s of decode + resize (the CPU stage every path pays) on one core and on all cores;
    one core also with the SA-1B boundary target (thickness 3), as labeling builds it."""
    from concurrent.futures import ProcessPoolExecutor

    import cv2

    from directsam.data.decode import decode_image, resize_rgb
    from directsam.data.targets import annotation_to_boundary

    cv2.setNumThreads(1)
    paths = sorted(str(p) for p in sample.glob("sa_*/sa_*.jpg"))
    out: dict[str, Any] = {"images": len(paths), "processes": processes, "resolutions": {}}
    first = decode_image(Path(paths[0]).read_bytes())
    out["image_hw"] = list(first.shape[:2])
    out["jpeg_kb_mean"] = round(sum(os.path.getsize(p) for p in paths) / len(paths) / 1024, 1)
    for res in resolutions:
        n, wall = _decode_worker((paths, res, len(paths), seconds))
        # with the target: decode + resize + boundary target from the JSON annotation
        t0, m = time.perf_counter(), 0
        while m < len(paths) or time.perf_counter() - t0 < seconds:
            p = Path(paths[m % len(paths)])
            image = decode_image(p.read_bytes())
            resize_rgb(image, res)
            annotation_to_boundary(p.with_suffix(".json").read_bytes(), "sa1b",
                                   image.shape[:2], res, 3, p.name)  # fmt: skip
            m += 1
        with_target = m / (time.perf_counter() - t0)
        with ProcessPoolExecutor(max_workers=processes) as pool:
            list(pool.map(_decode_worker, [(paths[:1], 64, 1, 0.0)] * processes))  # start-up
            t0 = time.perf_counter()
            done = list(pool.map(_decode_worker, [(paths, res, len(paths), seconds)] * processes))
            all_wall = time.perf_counter() - t0
        out["resolutions"][str(res)] = {
            "per_core_img_per_s": round(n / wall, 2),
            "per_core_with_target_img_per_s": round(with_target, 2),
            "all_cores_img_per_s": round(sum(d[0] for d in done) / all_wall, 2),
        }
    return out


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--output", default="gpu_suite.json", help="JSON report (default gpu_suite.json)"
    )
    p.add_argument("--budget-s", type=float, default=420.0, help="total seconds (default 420)")
    p.add_argument("--compile", action="store_true", help="also the torch.compile items")
    p.add_argument("--dry-run", action="store_true", help="same plan on CPU, tiny sizes")
    p.add_argument("--image-size", type=int, nargs=2, default=(1500, 2250), metavar=("H", "W"),
                   help="generated image size (default 1500 2250, SA-1B)")  # fmt: skip
    p.add_argument("--unique-images", type=int, default=None,
                   help="distinct generated images (default 32; dry run 4)")  # fmt: skip
    p.add_argument("--only", default=None, help="comma-separated item names (others: skipped)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, samples)")
    # internal probes, run by the suite as separate processes
    p.add_argument("--internal", choices=["environment", "decode_cpu"], help=argparse.SUPPRESS)
    p.add_argument("--sample", help=argparse.SUPPRESS)
    p.add_argument("--resolutions", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.internal:
        if args.internal == "environment":
            result = probe_environment()
        else:
            result = probe_decode(Path(args.sample), args.resolutions, args.processes, args.seconds)
        line = json.dumps(result)
        if args.output:
            Path(args.output).write_text(line + "\n")
        print(line)
        return result

    if args.unique_images is None:
        args.unique_images = 4 if args.dry_run else 32
    plan = build_plan(args)
    only = set(args.only.split(",")) if args.only else None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_suite_"))
    work.mkdir(parents=True, exist_ok=True)
    suite = Suite(args, plan, work)
    if only is not None:
        unknown = only - {it.name for it in plan}
        if unknown:
            p.error(f"--only: unknown items {sorted(unknown)}")
        for entry in suite.report["items"]:
            if entry["name"] not in only:
                entry.update(status="skipped", skip_reason="not selected by --only")
        suite.plan = [it if it.name in only else None for it in plan]  # type: ignore[misc]
    try:
        for i, item in enumerate(suite.plan):
            if item is None:
                continue
            try:
                suite.run_item(i, item)
            except Exception as err:  # noqa: BLE001 - one item never ends the suite
                suite.report["items"][i].update(
                    status="failed", skip_reason=f"suite error: {type(err).__name__}: {err}"
                )
            suite.write()
        suite.report["summary"] = summarize(suite.report["items"])
        suite.write()
    finally:
        if not (args.keep or args.workdir):
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(suite.report["summary"]))
    return suite.report


if __name__ == "__main__":
    main()
