"""docs/training.md's measured table is the one its record generates (each figure stated once)."""
import json
from pathlib import Path

import training_methods

RECORDS = sorted((Path(__file__).parent / "results" / "training").glob("mnist_*.json"))


def test_the_docs_table_is_generated_from_the_newest_record():
    assert RECORDS, "no training record in bench/results/training"
    docs = training_methods.DOCS.read_text()
    assert training_methods.table(json.loads(RECORDS[-1].read_text())) in docs


def test_the_table_names_each_ratio_against_gaussian():
    record = {"radii": [0.0, 0.5], "epochs": 1, "batch_size": 64, "lr": 0.05, "lr_schedule": "step",
              "certified_inputs": 2, "n": 100, "n0": 10, "alpha": 0.001, "prepass_n": 10, "prepass_seconds": 6.0,
              "threads": 2, "cpu": "cpu", "torch": "2", "commit": "abc", "date": "2026-12-08", "rows": [
                  {"sigma": 0.5, "method": "gaussian", "certified_accuracy": [1.0, 0.5], "acr": 0.4,
                   "abstention_rate": 0.0, "clean_accuracy": 0.9, "train_seconds": 10.0},
                  {"sigma": 0.5, "method": "macer", "certified_accuracy": [1.0, 1.0], "acr": 0.5,
                   "abstention_rate": 0.5, "clean_accuracy": 0.8, "train_seconds": 160.0}]}
    lines = training_methods.table(record).splitlines()
    assert lines[3] == "| 0.5 | macer | 1.000 | 1.000 | 0.500 | 1.25x | 0.500 | 0.800 | 16.0x |"
    assert "all training 2.9 min" in lines[-1]  # 10 + 160 s of training and 6 s of pre-pass: 176 s
