"""python -m leanconv.train and python -m leanconv.train.report as a user meets them: every bad flag or path is one
line before the first step (never a traceback, never a failure after training), a checkpoint path never moves or
replaces anything the program did not write, a damaged checkpoint (even inside its tensor data) is reported and
the previous one used, and --resume refuses a run whose options differ from the checkpoint's."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from leanconv.train import checkpoint as checkpoints
from test_datasets import _write_fashion

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "python"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    _write_fashion(root, count=32)
    return root


def train(data, *flags, timeout=300):
    command = [sys.executable, "-m", "leanconv.train", "--dataset", "fashion-mnist", "--data", str(data),
               "--workers", "0", "--batch-size", "16", "--epochs", "1", "--device", "cpu", *flags]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def refused(run, *words):
    """Exit status non-zero, no traceback, no epoch trained, and the message names each of ``words``."""
    assert run.returncode != 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "epoch 1/" not in run.stderr, run.stderr
    for word in words:
        assert word in run.stderr, (word, run.stderr)


BAD_FLAGS = [
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"), (["--epochs", "-1"], "--epochs"),
    (["--workers", "-1"], "--workers"), (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--weight-decay", "-0.1"], "--weight-decay"), (["--label-smoothing", "2"], "--label-smoothing"),
    (["--train-subset", "-5"], "--train-subset"), (["--checkpoint-every", "-1"], "--checkpoint-every"),
    (["--conv", "multigrid", "--group-size", "abc"], "--group-size"),
    (["--conv", "generated", "--ring-size", "many"], "--ring-size"),
    (["--conv", "shared", "--rotate", "-1"], "rotate"), (["--conv", "shared", "--rotate", "100"], "rotate"),
    (["--amp", "fp16"], "--amp fp16"), (["--device", "tpu:9"], "--device"), (["--batch-size", "64"], "--batch-size"),
    (["--resume"], "--resume"), (["--flip"], "--flip"),
    # The epoch order's seed (seed * 1,000,003 + epoch) would overflow 64 bits; meta tensors cannot train.
    (["--seed", "20000000000000"], "--seed"), (["--seed", "-1"], "--seed"), (["--device", "meta"], "--device meta"),
    # A ring count that is not whole, or larger than the weights it serves (an allocation failure).
    (["--conv", "generated", "--ring-size", "1.5"], "--ring-size"), (["--conv", "generated", "--ring-size", "1e12"],
                                                                    "more than the"),
    # A family's option with another family changes nothing: refused, not ignored.
    (["--rank", "2"], "--rank is an option of --conv lowrank"),
    (["--conv", "generated", "--group-size", "4"], "--group-size is an option of --conv multigrid"),
    (["--conv", "filter_summary", "--pointwise", "maybe"], "--pointwise"),
]


def main_refuses(data, *flags):
    """In-process (no start-up per case): the command line's main ends with SystemExit and its one-line message
    (what a shell shows) before any step; any other exception is a traceback for the user."""
    from leanconv.train import __main__ as cli

    argv = ["--dataset", "fashion-mnist", "--data", str(data), "--workers", "0", "--batch-size", "16", "--epochs", "1",
            "--device", "cpu", *flags]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    message = str(stop.value.code)
    assert "\n" not in message.strip() or message.startswith("leanconv:"), message
    return message


@pytest.mark.parametrize("flags,named", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_before_anything_trains(data, flags, named, capsys):
    assert named in main_refuses(data, *flags)
    assert "epoch 1/" not in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_a_gpu_device_without_a_gpu_is_refused(data):
    refused(train(data, "--device", "cuda", timeout=120), "no CUDA GPU")


def test_unwritable_log_and_checkpoint_paths_are_refused_before_training(data, tmp_path):
    (tmp_path / "logs").mkdir()
    assert "is a directory" in main_refuses(data, "--log-csv", str(tmp_path / "logs"))
    (tmp_path / "a_file").write_text("not a folder")
    assert "cannot write the CSV log" in main_refuses(data, "--log-csv", str(tmp_path / "a_file" / "run.csv"))
    assert "cannot create the checkpoint folder" in main_refuses(data, "--checkpoint",
                                                                 str(tmp_path / "a_file" / "run.pt"))
    assert "checkpoint folder" in main_refuses(data, "--checkpoint", "/proc/leanconv-checkpoints/run.pt")
    refused(train(data, "--log-csv", str(tmp_path / "logs")), "is a directory")  # and as a shell sees it


def test_a_checkpoint_path_never_moves_or_replaces_what_the_program_did_not_write(data, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "notes.txt").write_text("a user's file")
    refused(train(data, "--checkpoint", str(runs)), "is a directory")
    assert runs.is_dir() and (runs / "notes.txt").read_text() == "a user's file"
    assert not (tmp_path / "runs.prev").exists()
    for path in (tmp_path / "model.pt", tmp_path / "other.pt"):
        path.write_bytes(b"someone else's weights")
    (tmp_path / "other.pt.prev").write_bytes(b"someone else's backup")
    refused(train(data, "--checkpoint", str(tmp_path / "model.pt")), "not a leanconv training checkpoint")
    refused(train(data, "--checkpoint", str(tmp_path / "other.pt")), "not a leanconv training checkpoint")
    assert (tmp_path / "model.pt").read_bytes() == b"someone else's weights"
    assert (tmp_path / "other.pt.prev").read_bytes() == b"someone else's backup"
    assert not (tmp_path / "model.pt.prev").exists()
    # Its own checkpoints it replaces (keeping the previous one), and leaves no temporary files behind.
    mine = tmp_path / "mine.pt"
    assert train(data, "--checkpoint", str(mine), "--checkpoint-every", "1").returncode == 0
    assert checkpoints.is_checkpoint(mine) and checkpoints.is_checkpoint(tmp_path / "mine.pt.prev")
    assert not list(tmp_path.glob(".*.tmp"))


def _damage(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    position = int(len(data) * at)
    data[position:position + 8] = bytes(b ^ 0xFF for b in data[position:position + 8])
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_reported_and_the_previous_one_used(data, tmp_path):
    path = tmp_path / "run.pt"
    assert train(data, "--checkpoint", str(path), "--checkpoint-every", "1", "--epochs", "2").returncode == 0
    _damage(path, 0.6)  # inside the tensor data: only the checksum can tell
    resumed = train(data, "--checkpoint", str(path), "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "checksum" in resumed.stderr and "resuming from the previous checkpoint" in resumed.stderr
    _damage(path.with_name("run.pt.prev"), 0.5)
    _damage(path, 0.7)
    refused(train(data, "--checkpoint", str(path), "--resume", "--epochs", "2"), "no usable checkpoint")


@pytest.mark.parametrize("change,named", [(["--schedule", "cosine"], "--schedule"), (["--batch-size", "8"],
                                                                                       "--batch-size"),
                                          (["--seed", "3"], "--seed"), (["--lr", "0.05"], "--lr"),
                                          (["--conv", "lowrank"], "--conv"),
                                          (["--ring-size", "0.2"], "--ring-size (generated)"),
                                          (["--epochs", "3"], "--epochs")])
def test_resume_refuses_another_run(data, tmp_path, change, named):
    path = tmp_path / "run.pt"
    base = ["--conv", "generated", "--ring-size", "0.1", "--checkpoint", str(path)]
    assert train(data, *base).returncode == 0
    # Another family drops the generated family's flags (a family's flag with another family is refused).
    resume = ["--checkpoint", str(path)] if change[0] == "--conv" else base
    run = train(data, *resume, "--resume", *change)
    refused(run, named, "--resume continues the run")
    if named == "--epochs":
        assert "start a new run" in run.stderr
    same = train(data, *base, "--resume")  # the same options: the finished run reports its result
    assert same.returncode == 0 and "| resnet20-generated |" in same.stdout


def test_report_refuses_what_is_not_a_training_log(tmp_path):
    def report(*args):
        return subprocess.run([sys.executable, "-m", "leanconv.train.report", *args], cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=120)

    refused(report(str(tmp_path / "missing.csv")), "no such file")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    refused(report(str(tmp_path / "other.csv")), "no column")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    refused(report(str(tmp_path / "binary.csv")), "not a training log")
    log = tmp_path / "log.csv"
    log.write_text("run,family,epoch,train_loss,test_accuracy,lr,images_per_s,peak_memory_mib,learned_params,"
                   "dense_params\nr,dense,1,0.5,0.9,0.1,100,10,1000,1000\n")
    run = report(str(log), "--out", str(tmp_path / "plot"))
    assert run.returncode == 0 and (tmp_path / "plot.png").exists()
    assert f"wrote {tmp_path / 'plot.png'}" in run.stderr
    # A spreadsheet's save (a UTF-8 byte-order mark) is still a log.
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())
    assert report(str(marked), "--out", str(tmp_path / "marked.png")).returncode == 0


def test_report_refuses_an_out_it_cannot_write_in_one_line(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("run,family,epoch,train_loss,test_accuracy,lr,images_per_s,peak_memory_mib,learned_params,"
                   "dense_params\nr,dense,1,0.5,0.9,0.1,100,10,1000,1000\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "readonly").mkdir()
    (tmp_path / "readonly").chmod(0o500)
    (tmp_path / "afile").write_text("a user's file")
    before = snapshot(tmp_path)
    cases = [("", "needs a file name"), ("  ", "needs a file name"), (str(tmp_path / "folder"), "is a folder"),
             (str(tmp_path / "new") + "/", "is a folder"), (str(tmp_path / "folder.png"), "is a folder")]
    if os.geteuid() != 0:  # (root writes anywhere)
        cases.append((str(tmp_path / "readonly" / "plot.png"), "cannot write"))
    cases.append((str(tmp_path / "afile" / "plot.png"), "cannot write"))  # a file where a folder must be
    for out, words in cases:
        refused(subprocess.run([sys.executable, "-m", "leanconv.train.report", str(log), "--out", out], cwd=REPO,
                               env=ENV, capture_output=True, text=True, timeout=120), words)
    assert snapshot(tmp_path) == before


# ---- the command line's files: nothing a refused command names is created or changed -----------------------------

def snapshot(folder: Path):
    """Every file under ``folder`` with its bytes and permissions."""
    return {p: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_log_path_that_names_another_file_is_refused_and_the_file_kept(data, tmp_path):
    # A mistyped --log-csv that names the previous run's checkpoint, or any file that is not a log, is refused
    # before training and left as it was.
    checkpoint = tmp_path / "run.pt"
    assert train(data, "--checkpoint", str(checkpoint)).returncode == 0
    (tmp_path / "notes.txt").write_text("a user's notes")
    before = snapshot(tmp_path)
    for target in (checkpoint, tmp_path / "notes.txt"):
        assert "is not a CSV log" in main_refuses(data, "--log-csv", str(target))
    refused(train(data, "--log-csv", str(checkpoint)), "is not a CSV log")
    assert snapshot(tmp_path) == before
    # Its own log (and an empty file) it appends to.
    log = tmp_path / "run.csv"
    assert train(data, "--log-csv", str(log)).returncode == 0
    assert train(data, "--log-csv", str(log)).returncode == 0
    assert log.read_text().count("\n") == 3  # the header and one row per run


@pytest.mark.parametrize("flag", ["--log-csv", "--checkpoint"])
def test_a_path_ending_in_a_slash_is_a_folder_not_a_file(data, tmp_path, flag):
    message = main_refuses(data, flag, str(tmp_path / "exp1") + "/")
    assert "names a folder" in message
    assert not (tmp_path / "exp1").exists()


def test_the_same_path_for_log_and_checkpoint_is_refused_leaving_nothing(data, tmp_path):
    assert "name the same file" in main_refuses(data, "--log-csv", str(tmp_path / "run"), "--checkpoint",
                                                str(tmp_path / "run"))
    assert "name the same file" in main_refuses(data, "--log-csv", str(tmp_path / "run.prev"), "--checkpoint",
                                                str(tmp_path / "run"))
    assert not list(tmp_path.iterdir())  # no stray file blocks the corrected command
    assert train(data, "--log-csv", str(tmp_path / "run.csv"), "--checkpoint", str(tmp_path / "run")).returncode == 0


def test_checkpoints_keep_their_permissions_and_new_ones_follow_the_umask(data, tmp_path):
    path = tmp_path / "run.pt"
    previous = os.umask(0o022)
    try:
        assert train(data, "--checkpoint", str(path)).returncode == 0
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)  # shared with a group on purpose
        assert train(data, "--checkpoint", str(path), "--epochs", "1").returncode == 0
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


@pytest.mark.parametrize("blank", [b"", bytes(4096)], ids=["empty", "zeroed"])
def test_resume_falls_back_to_the_previous_checkpoint_when_the_newest_is_blank(data, tmp_path, blank):
    # A crash while writing can leave PATH empty or zero-filled beside a good PATH.prev: resume from that, say so,
    # and keep it while the next checkpoint replaces the blank file.
    path = tmp_path / "run.pt"
    assert train(data, "--checkpoint", str(path), "--checkpoint-every", "1", "--epochs", "2").returncode == 0
    good_previous = path.with_name("run.pt.prev").read_bytes()
    path.write_bytes(blank)
    resumed = train(data, "--checkpoint", str(path), "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "blank" in resumed.stderr and "resuming from the previous checkpoint" in resumed.stderr
    assert checkpoints.is_checkpoint(path)
    assert path.with_name("run.pt.prev").read_bytes() == good_previous


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "run.pt"
    checkpoints.save(path, {"step": 1})
    kept = path.read_bytes()
    real_fsync = os.fsync

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoints.os, "fsync", full)
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.save(path, {"step": 2})
    monkeypatch.setattr(checkpoints.os, "fsync", real_fsync)
    assert "No space left on device" in str(error.value) and "\n" not in str(error.value)
    assert path.read_bytes() == kept and not list(tmp_path.glob(".*.tmp"))


# ---- every command line without the training extra, and with too few images ---------------------------------------

COMMANDS = {"leanconv.train": [], "leanconv.train.demo": ["--epochs", "1", "--train-subset", "128"],
            "leanconv.train.lowrank": ["--epochs", "1", "--train-subset", "128"],
            "leanconv.train.filter_summary_search": ["--search-steps", "1", "--finetune-steps", "0",
                                                     "--train-subset", "16", "--batch-size", "16"]}
WITHOUT = "import runpy, sys; sys.modules[{module!r}] = None; sys.argv[0] = {command!r}; " \
          "runpy.run_module({command!r}, run_name='__main__')"


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("module", ["numpy", "tqdm"])
def test_every_command_line_names_a_missing_extra_in_one_line(command, module, data):
    for args in (["--help"], COMMANDS[command]):
        run = subprocess.run([sys.executable, "-c", WITHOUT.format(module=module, command=command), *args],
                             cwd=REPO, env={**ENV, "LEANCONV_FASHION_MNIST": str(data)}, capture_output=True,
                             text=True, timeout=120)
        if run.returncode == 0:  # (a command that does not need the module for this much: it ran)
            assert args == ["--help"] or module == "tqdm", run.stderr
            continue
        refused(run, f"needs {module}: pip install 'leanconv[train]'")
        assert run.stderr.strip().splitlines()[-1].startswith("leanconv:")


@pytest.mark.parametrize("command,args,words", [
    ("leanconv.train.demo", ["--train-subset", "100"], "fewer images than one batch of 128"),
    ("leanconv.train.demo", ["--train-subset", "200"], "the training set has 32 images"),
    ("leanconv.train.demo", ["--epochs", "0"], "--epochs"), ("leanconv.train.demo", ["--device", "meta"], "--device"),
    ("leanconv.train.lowrank", ["--train-subset", "5"], "fewer images than one batch"),
    ("leanconv.train.lowrank", ["--energy", "1.5"], "--energy"),
    ("leanconv.train.filter_summary_search", ["--train-subset", "20", "--batch-size", "16"],
     "32 images, and 20 of them go elsewhere"),
    ("leanconv.train.filter_summary_search", ["--batch-size", "0"], "--batch-size"),
    ("leanconv.train.filter_summary_search", ["--compressions", "4,x"], "--compressions"),
    ("leanconv.train.filter_summary_search", ["--compressions", "0.5"], "at least 1"),
])
def test_the_other_command_lines_refuse_bad_counts_in_one_line(command, args, words, data):
    run = subprocess.run([sys.executable, "-m", command, *args], cwd=REPO,
                         env={**ENV, "LEANCONV_FASHION_MNIST": str(data)}, capture_output=True, text=True, timeout=120)
    refused(run, words)


@pytest.mark.parametrize("command", ["leanconv.train.demo", "leanconv.train.lowrank",
                                     "leanconv.train.filter_summary_search"])
def test_the_other_command_lines_say_where_the_dataset_is_missing(command, tmp_path):
    run = subprocess.run([sys.executable, "-m", command, *COMMANDS[command]], cwd=REPO,
                         env={**ENV, "LEANCONV_FASHION_MNIST": str(tmp_path / "nowhere")}, capture_output=True,
                         text=True, timeout=120)
    refused(run, "Fashion-MNIST not found", "nowhere is not a folder")


def test_a_resume_mends_a_log_left_a_row_short_or_long_by_a_stop(data, tmp_path):
    """A stop between an epoch's checkpoint and its log row leaves the log a row short; the resume puts back the rows
    the checkpoint holds, and keeps the rows of other runs before them."""
    checkpoint, log = tmp_path / "run.pt", tmp_path / "run.csv"
    assert train(data, "--seed", "3", "--log-csv", str(log)).returncode == 0  # another run, earlier in the log
    flags = ["--epochs", "2", "--checkpoint", str(checkpoint), "--log-csv", str(log)]
    assert train(data, *flags).returncode == 0
    complete = log.read_text()
    assert complete.count("\n") == 4
    lines = complete.splitlines(keepends=True)
    for damaged in ("".join(lines[:-1]),  # the last epoch's row never written
                    complete + lines[-1].replace(",2,", ",3,", 1),  # a row the checkpoint does not know
                    "".join(lines[:2])):  # both rows of this run lost
        log.write_text(damaged)
        run = train(data, *flags, "--resume")
        assert run.returncode == 0, run.stderr
        assert log.read_text() == complete
