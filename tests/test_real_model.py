"""The whole pipeline with the real parts: Chroma, the real embedder, llama.cpp (SmolLM2)."""

from __future__ import annotations

import pytest

from qa.answer import Answer, Retrieved
from qa.pipeline import REFUSAL

pytestmark = pytest.mark.slow


def test_real_pipeline_streams_and_returns_a_well_formed_answer(seeded_pipeline) -> None:  # type: ignore[no-untyped-def]
    pieces, answer = [], None
    items = list(seeded_pipeline.ask_stream("What was the voter turnout in the October 2020 election?"))
    assert isinstance(items[0], Retrieved), "the passages found come first"
    for item in items[1:]:
        if isinstance(item, Answer):
            answer = item
        else:
            pieces.append(item)
    assert answer is not None and pieces, "text is streamed before the answer"
    assert any("88.4" in p.text for p in answer.passages), "the turnout passage is retrieved"
    assert answer.timings["first_token_s"] <= answer.timings["total_s"]
    if answer.answered:
        assert answer.citations
        numbers = {c.number for c in answer.citations}
        for c in answer.citations:
            assert f"[{c.number}]" in answer.text
            passage = answer.passages[c.number - 1]
            assert c.chunk_id == passage.id and c.quote in passage.text
        import re
        assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= numbers
    else:
        assert answer.text == REFUSAL and answer.citations == []


def test_real_model_loads_once(seeded_pipeline) -> None:  # type: ignore[no-untyped-def]
    seeded_pipeline.ask("Who is Luis Arce?")
    llama = seeded_pipeline.llm._llama
    seeded_pipeline.ask("Who is Jeanine Áñez?")
    assert seeded_pipeline.llm._llama is llama


def test_follow_up_with_real_embedder_finds_the_senate_passage(seeded_pipeline) -> None:  # type: ignore[no-untyped-def]
    history = [{"role": "user", "content": "How many seats did the MAS win in the lower house?"},
               {"role": "assistant", "content": "73 of the 130 seats [1]."}]
    passages = seeded_pipeline.retrieve("And in the Senate?", history)
    assert any("21 of the 36 seats in the Senate" in p.text for p in passages)


def test_real_model_held_to_the_json_schema(seeded_pipeline, smollm) -> None:  # type: ignore[no-untyped-def]
    """llama.cpp's grammar keeps even the 135M model to the schema; the pipeline reads and checks it."""
    import dataclasses
    import json

    from qa.prompt import build_messages
    from qa.reply import SCHEMA

    pipeline = dataclasses.replace(seeded_pipeline, settings=dataclasses.replace(seeded_pipeline.settings,
                                                                                 prompt="json"))
    question = "What was the voter turnout in the October 2020 election?"
    passages = pipeline.retrieve(question)
    raw = "".join(smollm.stream_chat(build_messages(question, passages, style="json"), max_tokens=120,
                                     temperature=0.1, schema=SCHEMA))
    reply = json.loads(raw) if raw.rstrip().endswith("}") else None
    if reply is not None:  # whole JSON unless the token limit cut it short
        assert set(reply) == {"found", "answer", "sources"} and isinstance(reply["found"], bool)
        assert all(isinstance(n, int) for n in reply["sources"])
    else:
        assert raw.lstrip().startswith('{"found": ') or raw.lstrip().startswith('{"found":')

    streamed, answer = "", None
    for item in pipeline.ask_stream(question):
        if isinstance(item, Answer):
            answer = item
        elif isinstance(item, str):
            streamed += item
    assert answer is not None and "{" not in streamed, "the reader never sees the JSON"
    if answer.answered:
        for c in answer.citations:
            assert f"[{c.number}]" in answer.text and c.quote in answer.passages[c.number - 1].text
    else:
        assert answer.text == REFUSAL and answer.citations == []


def test_installed_llama_cpp_has_no_amx_kernels() -> None:
    """scripts/install builds llama.cpp without the AMX kernels that crash on some Xeon CPUs."""
    from qa.llm import amx_build

    assert not amx_build()


def test_an_amx_build_loads_the_model_without_extra_buffers(smollm_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import llama_cpp
    import llama_cpp.llama_cpp as native

    from qa.llm import LlamaCppLLM

    default = native.llama_model_default_params
    info = llama_cpp.llama_print_system_info()
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: info + b"AMX_INT8 = 1 | ")
    llm = LlamaCppLLM(smollm_path, n_ctx=512, n_threads=1)
    assert "use_extra_bufts" in {name for name, *_ in type(llm.llama.model_params)._fields_}
    assert llm.llama.model_params.use_extra_bufts is False
    assert native.llama_model_default_params is default  # restored after loading
    assert "".join(llm.stream_chat([{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0.0))

    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: info.replace(b"AMX_INT8 = 1 | ", b""))
    assert LlamaCppLLM(smollm_path, n_ctx=512, n_threads=1).llama.model_params.use_extra_bufts is True


def test_an_amx_build_without_the_switch_is_a_clear_error(smollm_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import ctypes

    import llama_cpp
    import llama_cpp.llama_cpp as native

    from qa.errors import ModelNotFoundError
    from qa.llm import LlamaCppLLM

    class Older(ctypes.Structure):  # model parameters of a llama.cpp without use_extra_bufts
        _fields_ = [("n_gpu_layers", ctypes.c_int32)]

    info = llama_cpp.llama_print_system_info()
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: info + b"AMX_INT8 = 1 | ")
    monkeypatch.setattr(native, "llama_model_default_params", Older)
    with pytest.raises(ModelNotFoundError, match="install-llama"):
        LlamaCppLLM(smollm_path, n_ctx=512, n_threads=1).load()
