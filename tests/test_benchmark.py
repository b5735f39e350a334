"""Ground-truth loading: the real shared files, malformed files, failure markers, CSV."""
from __future__ import annotations

import json
import math

import pytest

from autoproxy.benchmark import canonical_arch_key, load_benchmark
from autoproxy.errors import BenchmarkError

KEY = "(0, 2, 3, 2, 3, 1)"


def write_json(path, records, space="nasbench201", task="cifar10"):
    path.write_text(json.dumps({space: {task: records}}))
    return path


def test_shared_nb201_file(nb201_benchmark_path):
    records = load_benchmark(nb201_benchmark_path)
    assert [sum(r.task == task for r in records) for task in ("cifar10", "cifar100")] == [506, 507]
    first = records[0]
    assert (first.space, first.task, first.key) == ("nb201", "cifar10", KEY)
    assert (first.accuracy, first.idx) == (86.06, 534)
    assert first.scores["params"] == 0.615386 and first.scores["flops"] == 88.307392
    assert len(first.scores) == 12 and set(first.times) == set(first.scores)
    assert first.times["grasp"] == pytest.approx(1.6095296021085232)
    # NASLib's failure markers (-1e8, Infinity) became nan: nwot, epe_nas and jacov once per task.
    failed = sorted((r.task, name) for r in records for name, v in r.scores.items() if math.isnan(v))
    tasks, proxies = ("cifar10", "cifar100"), ("epe_nas", "jacov", "nwot")
    assert failed == sorted((task, name) for task in tasks for name in proxies)


def test_shared_nb101_file_filters_by_our_space_name(nb101_benchmark_path):
    records = load_benchmark(nb101_benchmark_path, space="nb101", task="cifar10")
    assert len(records) == 350
    assert all(r.space == "nb101" and r.idx is None and not r.times for r in records)
    assert records[0].scores["params"] == 4.095778 and records[0].accuracy == 92.578125
    assert "nwot" not in records[0].scores


def test_requested_space_or_task_missing(nb101_benchmark_path):
    with pytest.raises(BenchmarkError, match="no search space 'nb201'"):
        load_benchmark(nb101_benchmark_path, space="nb201")
    with pytest.raises(BenchmarkError, match="no task 'cifar100'"):
        load_benchmark(nb101_benchmark_path, task="cifar100")
    with pytest.raises(BenchmarkError, match="unknown search space 'darts'"):
        load_benchmark(nb101_benchmark_path, space="darts")


def test_failure_markers_become_nan(tmp_path):
    path = tmp_path / "zc.json"
    path.write_text(
        '{"nasbench201": {"cifar10": {"(0, 1, 2, 3, 4, 0)": {"val_accuracy": 50, '
        '"nwot": -100000000.0, "jacov": {"score": Infinity, "time": 0.5}, "snip": NaN, '
        '"zen": -Infinity, "synflow": {"score": 2.5, "time": 0.25}, "idx": "7"}}}}'
    )
    (record,) = load_benchmark(path)
    assert all(math.isnan(record.scores[name]) for name in ("nwot", "jacov", "snip", "zen"))
    assert record.scores["synflow"] == 2.5
    assert dict(record.times) == {"jacov": 0.5, "synflow": 0.25}
    assert record.idx == 7 and record.accuracy == 50.0


@pytest.mark.parametrize(
    "record, message",
    [
        ({"params": 1.0}, "missing val_accuracy"),
        ({"val_accuracy": "high"}, "val_accuracy must be a finite number"),
        ({"val_accuracy": None}, "val_accuracy must be a finite number"),
        ({"val_accuracy": True}, "val_accuracy must be a finite number"),
        ({"val_accuracy": 90.0, "snip": "big"}, "snip must be a number"),
        ({"val_accuracy": 90.0, "snip": [1.0]}, "snip must be a number"),
        ({"val_accuracy": 90.0, "snip": {"time": 1.0}}, "snip: object without 'score'"),
        ({"val_accuracy": 90.0, "snip": {"score": 1.0, "time": "slow"}}, "snip.time must be a finite number"),
        ({"val_accuracy": 90.0, "idx": 1.5}, "idx must be an integer"),
        ([90.0], "record must be an object"),
    ],
)
def test_malformed_record_names_file_and_key(tmp_path, record, message):
    path = write_json(tmp_path / "bad.json", {KEY: record})
    with pytest.raises(BenchmarkError, match=message) as error:
        load_benchmark(path)
    assert str(path) in str(error.value) and KEY in str(error.value)
    assert "\n" not in str(error.value)


def test_nonfinite_accuracy_is_rejected(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"nasbench201": {"cifar10": {"(0, 0, 0, 0, 0, 0)": {"val_accuracy": NaN}}}}')
    with pytest.raises(BenchmarkError, match="val_accuracy must be a finite number"):
        load_benchmark(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"nasbench201": {"cifar10": {', "invalid JSON at line 1"),
        ("[1, 2]", "top level must be an object"),
        ('{"nasbench201": [1]}', "expected an object of tasks"),
        ('{"nasbench201": {"cifar10": 3}}', "expected an object of archs"),
        ('{"darts": {"cifar10": {}}}', "unknown search space 'darts'"),
        ('{"nasbench201": {"cifar10": {"(0, 1)": {"val_accuracy": 1}, "(0, 1)": {"val_accuracy": 2}}}}',
         "duplicate key"),
        ('{"nasbench201": {"cifar10": {"zero-one": {"val_accuracy": 1}}}}', "bad arch key"),
        ('{"nasbench201": {"cifar10": {}}}', "no records"),
    ],
)
def test_malformed_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BenchmarkError, match=message) as error:
        load_benchmark(path)
    assert str(path) in str(error.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(BenchmarkError, match="no such benchmark file"):
        load_benchmark(tmp_path / "absent.json")
    other = tmp_path / "table.txt"
    other.write_text("arch,accuracy\n")
    with pytest.raises(BenchmarkError, match="unknown benchmark format"):
        load_benchmark(other)


def test_csv_with_space_and_task_from_caller(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text(
        "arch,accuracy,params,snip\n"
        '"(0,2,3,2,3,1)",86.06,0.615386,\n'
        '"(1, 1, 1, 1, 1, 1)",10,0.07,-1e8\n'
    )
    records = load_benchmark(path, space="nasbench201", task="cifar10")
    assert [r.key for r in records] == [KEY, "(1, 1, 1, 1, 1, 1)"]
    assert records[0].space == "nb201" and records[0].task == "cifar10" and records[0].accuracy == 86.06
    assert records[0].scores["params"] == 0.615386 and math.isnan(records[0].scores["snip"])
    assert math.isnan(records[1].scores["snip"])


def test_csv_with_space_and_task_columns_filters(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text(
        "arch,accuracy,space,task,idx\n"
        '"(0, 2, 3, 2, 3, 1)",86,nb201,cifar10,534\n'
        '"(0, 2, 3, 2, 3, 1)",62,nb201,cifar100,\n'
    )
    assert [r.accuracy for r in load_benchmark(path)] == [86.0, 62.0]
    (record,) = load_benchmark(path, task="cifar100")
    assert record.accuracy == 62.0 and record.idx is None and dict(record.scores) == {}
    assert load_benchmark(path, task="cifar10")[0].idx == 534


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("arch,params\n\"(0,)\",1\n", {"space": "nb201", "task": "c"}, "missing column 'accuracy'"),
        ('arch,accuracy\n"(0,)",1\n', {"task": "c"}, "no 'space' column"),
        ('arch,accuracy\n"(0,)",1\n', {"space": "nb201"}, "no 'task' column"),
        ('arch,accuracy\n"(0,)",high\n', {"space": "nb201", "task": "c"},
         r"line 2 \(\(0,\)\): accuracy: not a number"),
        ('arch,accuracy\n"(0,)",\n', {"space": "nb201", "task": "c"}, "accuracy must be a finite number"),
        ('arch,accuracy,snip\n"(0,)",1,x\n', {"space": "nb201", "task": "c"}, "snip: not a number"),
        ('arch,accuracy\n"(0,)",1,2\n', {"space": "nb201", "task": "c"}, "line 2: wrong number of cells"),
        ('arch,accuracy,space,task\n"(0,)",1,dartz,c\n', {}, "unknown search space 'dartz'"),
    ],
)
def test_malformed_csv(tmp_path, text, kwargs, message):
    path = tmp_path / "gt.csv"
    path.write_text(text)
    with pytest.raises(BenchmarkError, match=message) as error:
        load_benchmark(path, **kwargs)
    assert str(path) in str(error.value)


def test_canonical_arch_key():
    assert canonical_arch_key(" (0,2, 3 ) ") == "(0, 2, 3)"
    assert canonical_arch_key("[4]") == canonical_arch_key("(4,)") == "(4)"
    for text in ("0, 2", "(0, a)", "((0, 1), 2)", "(0,, 1)"):
        with pytest.raises(ValueError):
            canonical_arch_key(text)
