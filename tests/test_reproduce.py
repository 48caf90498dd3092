import json

from cnnlab.reproduce import build_table


def test_table_from_records(tmp_path):
    machine = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "python": "3.11"}
    recs = [{"recipe": "mnist-cnn-small", "seed": s, "test_accuracy": a, "test_loss": 0.03,
             "epochs_run": 10, "best_epoch": 9, "train_time_s": 300.0, "precision": "bf16",
             "dataset_lossy": False, "overrides": {}, "date": "2026-11-26T05:00:00+00:00",
             "machine": machine} for s, a in ((0, 0.9920), (1, 0.9930))]
    recs.append({**recs[0], "overrides": {"epochs": 1}, "test_accuracy": 0.5})  # not a full run
    (tmp_path / "mnist-cnn-small.json").write_text(json.dumps(recs))
    table = build_table(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| mnist-cnn-small"))
    assert "| 99.20 |" in row and "99.25 ± 0.07 | yes |" in row and "| 2 |" in row and "5.0" in row
    assert "Test CPU, 2 cores, torch 2.13.0" in table
    variant = next(line for line in table.splitlines() if '{"epochs": 1}' in line)
    assert "| 50.00 |" in variant  # runs with overrides are listed apart, never mixed in
