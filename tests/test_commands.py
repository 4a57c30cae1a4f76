"""The certify and predict commands certify inputs in chunks whose samples share batches."""
import torch

from rsengine import commands, run
from rsengine.checkpoints import bundled_checkpoint
from rsengine.cli import _fill_defaults, build_parser, main
from rsengine.results import read_results
from rsengine.stats import floor_significant

ARGS = ["mnist", bundled_checkpoint(), "0.5"]


def _record_batches(monkeypatch):
    """Wrap the loaded classifier so each forward pass's row count is recorded."""
    real_load, sizes = commands.load_classifier, []

    class Recorder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            sizes.append(x.shape[0])
            return self.inner(x)

    monkeypatch.setattr(commands, "load_classifier",
                        lambda *a, **k: (lambda c: c._replace(model=Recorder(c.model)))(real_load(*a, **k)))
    return sizes


def _one_at_a_time(smooth, dataset, indices):
    """(certify, predict) rows as the command wrote them before chunking: one input per call."""
    certified, predicted = [], []
    for i in indices:
        x, _ = dataset[i]
        p, r = smooth.certify_batch(x[None], 20, 200, 0.001, 150, streams=[i])
        certified.append((int(p[0]), floor_significant(float(r[0]))))
        predicted.append(int(smooth.predict_batch(x[None], 200, 0.001, 150, streams=[i])[0]))
    return certified, predicted


def test_chunk_size_packs_small_phases_and_keeps_large_ones_alone():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert run.chunk_size(1000, 100 + 1000, cpu, 784) == 14
    assert run.chunk_size(None, 100 + 1000, cpu, 784) == 4  # 334 automatic rows a batch
    assert run.chunk_size(None, 100 + 1000, cpu, 3) == 14  # 1,000 rows (the cap)
    assert run.chunk_size(None, 100 + 100_000, cuda, 784) == 1  # the paper's n: one input a chunk
    assert run.chunk_size(7, 100_000, cpu, 784) == 1


def test_certify_packs_the_selection_draws_of_a_chunk_into_one_batch(tmp_path, monkeypatch):
    sizes = _record_batches(monkeypatch)
    out = tmp_path / "out.tsv"
    assert main(["certify", *ARGS, str(out), "--skip", "250", "--N0", "20", "--N", "200", "--batch", "150"]) == 0
    # A 1-row compatibility probe, then all 4 inputs in one chunk (16 * 150 // 220 = 10 inputs):
    # their 4 x 20 selection draws share one batch, and 800 estimation rows fill 150-row batches.
    assert sizes == [1, 80] + [150] * 5 + [50]
    table = read_results(out)
    assert table.idx.tolist() == [0, 250, 500, 750]
    assert len(set(table.time_seconds)) == 1  # one chunk: its time shared by its inputs


def test_chunked_rows_equal_one_input_at_a_time(tmp_path):
    # sigma 0.5, twice the training noise: votes split, so radii vary from input to input.
    out, pred = tmp_path / "out.tsv", tmp_path / "pred.tsv"
    common = ["--skip", "97", "--max", "700", "--N", "200", "--batch", "150"]
    assert main(["certify", *ARGS, str(out), *common, "--N0", "20"]) == 0
    assert main(["predict", *ARGS, str(pred), *common]) == 0
    opts = build_parser().parse_args(["certify", *ARGS, str(out)])
    _fill_defaults(opts)
    smooth, dataset = commands._smoothed_model(opts)
    certified, predicted = _one_at_a_time(smooth, dataset, range(0, 700, 97))
    table = read_results(out)
    assert certified == list(zip(table.predict.tolist(), table.radius.tolist()))
    assert len(set(certified)) > 2  # inputs with different answers, not one answer for all
    assert predicted == read_results(pred).predict.tolist()


def test_a_run_that_can_certify_nothing_says_so_first_and_ends_cleanly(tmp_path, capsys):
    # Issue 9's report: N = 1 computed every row, then failed in the summary (exit status 2).
    out = tmp_path / "out.tsv"
    assert main(["certify", *ARGS, str(out), "--N", "1", "--max", "20", "--skip", "10"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("warning: at N = 1 and alpha = 0.001 no input can be certified")
    assert "no input can be certified at sigma = 0.5" in captured.out
    assert read_results(out).predict.tolist() == [-1, -1]
