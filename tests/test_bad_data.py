"""Bad data names itself (issue 34): the two reported cases through the command, --on-bad-input skip
through a resume, and a fuzzer over image bytes, folder layouts and file names whose every case
ends in rows or in one line naming the input, never a traceback, a hang or a half-written file."""
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rsengine.checkpoints import bundled_checkpoint
from rsengine.cli import main
from rsengine.results import read_results
from vision_extra import marks

pytestmark = marks("torchvision")
FAST = ["--N0", "4", "--N", "8", "--batch", "16", "--alpha", "0.01"]
FUZZ_EXAMPLES = 300  # cases per CI run: about 0.1 s each on 2 cores


def _png(path: Path, pixels: np.ndarray, mode: str = "L") -> None:
    from PIL import Image

    (Image.fromarray(pixels) if pixels.dtype == np.uint16 else Image.fromarray(pixels, mode)).save(path)


def _digits(root: Path, per_class: int = 3, classes: int = 10) -> Path:
    """root/<digit>/<i>.png: 28x28 gray images, the bundled MNIST CNN's inputs."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / str(c)).mkdir(parents=True)
        for i in range(per_class):
            _png(root / str(c) / f"{i}.png", rng.integers(0, 256, (28, 28), dtype=np.uint8))
    return root


def _rsengine(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rsengine", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("certify: ")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_truncated_png_is_named_and_the_rows_before_it_are_kept(tmp_path):
    data = _digits(tmp_path / "data")
    png = (data / "3" / "1.png").read_bytes()
    (data / "3" / "1.png").write_bytes(png[:len(png) // 2])
    result = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", *FAST, cwd=tmp_path)
    assert _error_line(result) == (
        "rsengine certify: error: input 10 of data set 'data' (data/3/1.png) cannot be read (image file is truncated): "
        "replace or remove the file, or skip such inputs (rsengine certify: --on-bad-input skip)")
    assert read_results(tmp_path / "out.tsv").idx.tolist() == list(range(10))  # all of the chunk before it


def test_an_odd_sized_image_is_named_with_the_resize_options(tmp_path):
    data = _digits(tmp_path / "data")
    _png(data / "4" / "0.png", np.zeros((30, 32), dtype=np.uint8))
    result = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", *FAST, cwd=tmp_path)
    assert _error_line(result) == (
        "rsengine certify: error: input 12 of data set 'data' (data/4/0.png) is 1x30x32, not 1x28x28 like input 0: "
        "resize or crop the images to one size (rsengine certify: --resize/--crop) or remove it")
    assert read_results(tmp_path / "out.tsv").idx.tolist() == list(range(12))
    fixed = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "resized.tsv", "--resize", 28, "--crop", 28,
                      *FAST, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr


def test_skip_records_bad_inputs_and_a_resume_keeps_them_skipped(tmp_path):
    data = _digits(tmp_path / "data")
    (data / "2" / "0.png").write_bytes(b"")
    (data / "7" / "2.png").write_bytes(b"not a png at all")
    skip = ["--on-bad-input", "skip"]
    first = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", "--max", 12, *skip, *FAST,
                      cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "skipped input 6 of data set 'data' (data/2/0.png) cannot be read" in first.stderr
    assert "1 input skipped as bad (6; reasons in out.tsv.run.json): the accuracies are over the other 11" \
        in first.stdout
    # The resume runs on past --max 12: input 23 is bad too, 6 stays skipped without being read again.
    second = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", *skip, *FAST, cwd=tmp_path)
    assert second.returncode != 0 and "other arguments" in second.stderr  # --max is an argument: another run
    resumed = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "all.tsv", *skip, *FAST, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (data / "2" / "0.png").write_bytes((data / "2" / "1.png").read_bytes())  # the file is fixed...
    again = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "all.tsv", *skip, *FAST, cwd=tmp_path)
    assert "30 of 30 inputs already done" in again.stderr  # ...but stays skipped
    record = json.loads((tmp_path / "all.tsv.run.json").read_text())
    assert sorted(record["skipped"]) == ["23", "6"] and record["complete"] is True
    assert 6 not in read_results(tmp_path / "all.tsv").idx.tolist()
    analyzed = _rsengine("analyze", "all.tsv", cwd=tmp_path)
    assert "2 inputs skipped as bad (6, 23;" in analyzed.stdout
    retried = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "all.tsv", *skip, "--retry-skipped", *FAST,
                        cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert sorted(json.loads((tmp_path / "all.tsv.run.json").read_text())["skipped"]) == ["23"]
    assert 6 in read_results(tmp_path / "all.tsv").idx.tolist()


def test_a_16_bit_png_is_refused_not_clipped(tmp_path):
    data = _digits(tmp_path / "data", per_class=1, classes=2)
    _png(data / "1" / "0.png", np.full((28, 28), 40000, dtype=np.uint16), "I;16")
    result = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", "--num-classes", 10, *FAST,
                       cwd=tmp_path)
    assert "(data/1/0.png) cannot be read (I;16 pixels (more than 8 bits per channel); convert the image to 8 bits)" \
        in _error_line(result)


def test_a_symlink_loop_is_refused_not_walked(tmp_path):
    data = _digits(tmp_path / "data", per_class=1)
    os.symlink("..", data / "3" / "up")
    result = _rsengine("certify", "data", bundled_checkpoint(), 0.25, "out.tsv", *FAST, cwd=tmp_path)
    assert "data/3/up/3 leads back to" in _error_line(result) and "remove the link" in _error_line(result)


# -- the fuzzer --------------------------------------------------------------------------------------


def _image_bytes(mode: str, size: tuple[int, int], fmt: str, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))  # mode I;16
    elif mode in ("RGB", "CMYK", "RGBA"):
        image = Image.fromarray(rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8), mode)
    else:
        image = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with one empty data chunk: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


FORMATS = {"L": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"], "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
           "P": ["PNG", "BMP", "TIFF"], "1": ["PNG", "BMP", "TIFF"], "LA": ["PNG", "TIFF"], "RGBA": ["PNG", "TIFF"],
           "I;16": ["PNG", "TIFF"], "CMYK": ["JPEG", "TIFF"]}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


@st.composite
def bad_files(draw):
    """(file name bytes, contents or None for a dangling link, what was done to it) of one fuzzed file."""
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    size = draw(st.sampled_from([(28, 28), (28, 28), (1, 1), (27, 28), (64, 64), (300, 7)]))
    data = _image_bytes(mode, size, fmt, draw(st.integers(0, 3)))
    damage = draw(st.sampled_from(["none", "none", "truncate", "empty", "garbage", "flip", "huge", "dangling"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == "empty":
        data = b""
    elif damage == "garbage":
        data = draw(st.binary(min_size=1, max_size=64))
    elif damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    elif damage == "huge":
        data = _huge_png(draw(st.sampled_from([20_000, 70_000])), 20_000)
    elif damage == "dangling":
        data = None
    stem = draw(st.sampled_from([b"0", b"sp ace", b"caf\xc3\xa9", b"\xff\xfe-not-utf8", b".hidden", b"z" * 200]))
    extension = EXTENSIONS[fmt] if damage != "huge" else ".png"
    return stem + draw(st.sampled_from([extension.encode(), extension.upper().encode()])), data, f"{mode} {fmt} {damage}"


def _certify_in_process(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(args)  # a traceback would propagate out of here and fail the test
    return status, out.getvalue(), err.getvalue()


@settings(max_examples=FUZZ_EXAMPLES, deadline=30_000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bad=bad_files(), policy=st.sampled_from(["stop", "skip"]), loop=st.booleans())
def test_every_fuzzed_input_ends_in_a_row_or_one_line_naming_it(bad, policy, loop):
    name, data, kind = bad
    with tempfile.TemporaryDirectory() as scratch:
        root = _digits(Path(scratch) / "data", per_class=1, classes=3)
        path = os.path.join(os.fsencode(root / "1"), name)
        if data is None:
            os.symlink(b"/nonexistent/target.png", path)
        else:
            with open(path, "wb") as file:
                file.write(data)
        if loop:
            os.symlink("..", root / "2" / "back")
        out = Path(scratch) / "out.tsv"
        status, stdout, stderr = _certify_in_process(
            ["certify", str(root), bundled_checkpoint(), "0.25", str(out), "--num-classes", "10",
             "--on-bad-input", policy, *FAST])
        errors = [line for line in stderr.splitlines() if line.startswith("rsengine certify: error:")]
        assert status in (0, 2) and len(errors) == (status == 2), stderr
        event(f"{kind}: {'stopped' if status else 'rows'}" + (" (loop)" if loop else ""))
        if loop:
            assert status == 2 and "leads back to" in errors[0]
            return
        # The data set's order: 0/0.png, then class 1's files sorted (the fuzzed name and 0.png), then 2/0.png.
        names = sorted({b"0.png", name})  # the fuzzed file may replace the good one
        listed = name.lower().endswith(tuple(e.encode() for e in EXTENSIONS.values()))
        fuzzed = 1 + names.index(name) if listed else None
        inputs = 2 + (len(names) if listed else 1)
        rows = read_results(out).idx.tolist() if out.exists() else []
        text = out.read_text(encoding="utf-8") if out.exists() else ""
        assert not text or text.endswith("\n")  # never half a row
        if status == 2:
            assert fuzzed is not None and f"input {fuzzed} of data set" in errors[0] and policy == "stop", errors
            assert rows == list(range(fuzzed))  # the rows before it, all there
        else:
            record = json.loads(Path(f"{out}.run.json").read_text())
            skipped = sorted(int(i) for i in record.get("skipped", {}))
            assert sorted(rows + skipped) == list(range(inputs)) and record["complete"]
