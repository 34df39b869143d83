"""The whole model as one ONNX graph: ``torch.onnx`` for the networks and the numeric
preprocessing, ONNX-ML ``LabelEncoder`` nodes for what PyTorch cannot take or give (category
strings in, class labels out), and the model's description in the graph's metadata."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from dnntune import __version__
from dnntune.artifacts import ModelManifest
from dnntune.config import Task
from dnntune.data import MISSING, category_levels, numeric_values, to_days
from dnntune.export._module import Columns, WholeModel

__all__ = ["OPSET", "feeds", "inputs_metadata", "to_onnx"]

OPSET = 18  # the standard domain's opset (onnxruntime 1.16 and later run it)
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder with string and integer keys
_INPUT = "__dnntune_input_"  # the exporter's inputs, named after the columns once exported
_CODE = "__dnntune_code_"  # prefix of the networks' category-code inputs inside the graph
_LABEL_INDEX = "__dnntune_label_index__"


def _outputs(task: Task) -> list[str]:
    if task is Task.REGRESSION:
        return ["prediction"]
    return ["probabilities", "labels" if task is Task.MULTILABEL else _LABEL_INDEX]


def inputs_metadata(columns: Columns) -> list[dict[str, Any]]:
    """Each input's name, kind and (categories) known levels, as the graph's metadata says."""
    out: list[dict[str, Any]] = []
    for name in columns.names:
        entry: dict[str, Any] = {"name": name, "kind": columns.kind(name)}
        if name in columns.categorical:
            entry["levels"] = [lvl for lvl in columns.levels[name] if lvl != MISSING]
        out.append(entry)
    return out


def feeds(frame: pd.DataFrame, inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A table's columns as the graph's inputs: numbers as float64 (missing as NaN), dates as
    float64 days since 1970-01-01, categories as the strings ``predict`` matches levels by
    (integral numbers without '.0'; missing as '')."""
    out: dict[str, np.ndarray] = {}
    for entry in inputs:
        col = frame[entry["name"]]
        if entry["kind"] == "category":
            levels = category_levels(col)
            values = np.where(levels == MISSING, "", levels).astype(str)
        elif entry["kind"] == "date":
            values = to_days(col)
        else:
            values = numeric_values(col)
        out[entry["name"]] = values.reshape(-1, 1)
    return out


def _example(columns: Columns) -> tuple[torch.Tensor, ...]:
    numbers = [torch.zeros(2, 1, dtype=torch.float64) for _ in (*columns.numeric, *columns.dates)]
    codes = [torch.zeros(2, 1, dtype=torch.int64) for _ in columns.categorical]
    return (*numbers, *codes)


def to_onnx(whole: WholeModel, columns: Columns, manifest: ModelManifest) -> Any:
    """The ONNX ``ModelProto`` of the whole model (not yet verified)."""
    import onnx
    from onnx import helper

    example = _example(columns)
    internal = [f"{_INPUT}{i}" for i in range(len(example))]
    rows = torch.export.Dim("rows")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # The exporter prints its progress and warns about its own internals.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        program = torch.onnx.export(
            whole,
            example,
            input_names=internal,
            output_names=_outputs(manifest.task),
            dynamic_shapes=(tuple({0: rows} for _ in example),),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    _name_inputs(program.model.graph, columns)
    model = program.model_proto
    graph = model.graph
    encoders = []
    for i, name in enumerate(columns.categorical):
        levels = list(columns.levels[name])
        keys, values = levels, list(range(len(levels)))
        if "" not in levels:  # a missing category arrives as ''
            keys, values = [*keys, ""], [*values, columns.missing_code(name)]
        encoders.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [f"{_CODE}{i}"],
                domain="ai.onnx.ml",
                keys_strings=keys,
                values_int64s=values,
                default_int64=len(levels),
            )
        )
        _retype(graph.input, f"{_CODE}{i}", name, onnx.TensorProto.STRING)
    if manifest.task in (Task.BINARY, Task.MULTICLASS):
        labels = [str(c) for c in manifest.classes or []]
        encoders_out = helper.make_node(
            "LabelEncoder", [_LABEL_INDEX], ["label"], domain="ai.onnx.ml",
            keys_int64s=list(range(len(labels))), values_strings=labels, default_string="",
        )  # fmt: skip
        graph.node.append(encoders_out)
        _retype(graph.output, _LABEL_INDEX, "label", onnx.TensorProto.STRING)
    for node in reversed(encoders):
        graph.node.insert(0, node)
    for op in list(model.opset_import):  # the exporter may import ai.onnx.ml at version 1
        if op.domain == "ai.onnx.ml":
            model.opset_import.remove(op)
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    helper.set_model_props(model, _metadata(columns, manifest))
    model.producer_name, model.producer_version = "dnntune", __version__
    onnx.checker.check_model(model)
    return model


def _name_inputs(graph: Any, columns: Columns) -> None:
    """Give the numeric inputs their columns' names and the category inputs code names, after
    renaming any value of the graph that already has one of those names (a column called
    'add' or 'cat' would otherwise clash with the exporter's names for its nodes)."""
    n_numbers = len(columns.numeric) + len(columns.dates)
    codes = [f"{_CODE}{i}" for i in range(len(columns.categorical))]
    taken = {*columns.names, *codes, "label", "labels", "probabilities", "prediction"}
    inner = [v for node in graph.all_nodes() for v in node.outputs]
    for k, value in enumerate([*inner, *graph.initializers.values()]):
        if value.name in taken and not value.is_graph_output():
            value.name = f"__dnntune_value_{k}"
    for value, name in zip(graph.inputs, [*columns.names[:n_numbers], *codes], strict=True):
        value.name = name


def _retype(values: Any, old: str, new: str, elem_type: int) -> None:
    """Rename a graph input or output and give it another element type (same shape)."""
    for value in values:
        if value.name == old:
            value.name = new
            value.type.tensor_type.elem_type = elem_type
            return
    raise RuntimeError(f"the exported graph has no value {old!r}")


def _metadata(columns: Columns, manifest: ModelManifest) -> dict[str, str]:
    outputs = {
        Task.REGRESSION: "prediction: the predicted value (rows,), or (rows, targets)",
        Task.MULTILABEL: "probabilities: (rows, labels); labels: 1 where probability >= 0.5",
        Task.BINARY: "probabilities: (rows, classes); label: the most probable class",
        Task.MULTICLASS: "probabilities: (rows, classes); label: the most probable class",
    }[manifest.task]
    return {
        "dnntune.task": manifest.task.value,
        "dnntune.target": json.dumps(list(manifest.target)),
        "dnntune.classes": json.dumps([str(c) for c in manifest.classes or []]),
        "dnntune.inputs": json.dumps(inputs_metadata(columns)),
        "dnntune.outputs": outputs,
        "dnntune.version": __version__,
    }
