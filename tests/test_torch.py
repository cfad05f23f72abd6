"""A torch user's path: a state dict from a container (or a sharded model directory) that
``torch.nn.Module.load_state_dict(strict=True)`` takes, with no decompressed copy on disk.
torch is not a dependency of ansz: these tests run only where it is installed."""

import json

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

import ansz  # noqa: E402


def _model(seed: int):
    """A small network with float32, bfloat16 and int64 (a 0-d buffer) state."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.BatchNorm1d(64), torch.nn.GELU(),
        torch.nn.Linear(64, 64), torch.nn.LayerNorm(64), torch.nn.Linear(64, 8))
    model[3].to(torch.bfloat16)
    with torch.no_grad():  # buffers that are not their initial values
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2)
        model[1].num_batches_tracked.fill_(12)
    return model


def _bits(t) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _assert_same_state(model, reference):
    got, want = model.state_dict(), reference.state_dict()
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        assert _bits(got[name]) == _bits(want[name]), name


def test_load_file_gives_a_state_dict_load_state_dict_takes(tmp_path):
    reference = _model(0)
    state = reference.state_dict()
    assert {t.dtype for t in state.values()} == {torch.float32, torch.bfloat16, torch.int64}
    save_file(state, str(tmp_path / "model.safetensors"))
    ansz.compress_file(tmp_path / "model.safetensors", tmp_path / "model.safetensors.ansz",
                       chunk_size=4096)
    (tmp_path / "model.safetensors").unlink()  # no decompressed copy
    loaded = ansz.load_file(tmp_path / "model.safetensors.ansz", framework="pt")
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in loaded.values())
    model = _model(1)
    assert _bits(model[0].weight) != _bits(reference[0].weight)
    model.load_state_dict(loaded, strict=True)
    _assert_same_state(model, reference)
    model.eval()
    reference.eval()
    x = torch.randn(5, 16)
    assert torch.equal(model[:3](x), reference[:3](x))  # (the float32 part: bf16 follows)


def test_save_file_from_a_state_dict_and_back(tmp_path):
    reference = _model(2)
    ansz.save_file(reference.state_dict(), tmp_path / "m.safetensors.ansz", {"format": "pt"})
    model = _model(3)
    model.load_state_dict(ansz.load_file(tmp_path / "m.safetensors.ansz", framework="pt"))
    _assert_same_state(model, reference)
    with ansz.open(tmp_path / "m.safetensors.ansz", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        rows = f.get_slice("3.weight")[:4]  # the bfloat16 layer's first rows only
        assert rows.dtype == torch.bfloat16 and _bits(rows) == _bits(reference[3].weight[:4])


def test_load_model_dir_gives_the_state_dict_of_a_sharded_model(tmp_path):
    reference = _model(4)
    state = reference.state_dict()
    names = list(state)
    shards = {"model-00001-of-00002.safetensors": names[:5],
              "model-00002-of-00002.safetensors": names[5:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(tmp_path / shard), metadata={"format": "pt"})
        ansz.compress_file(tmp_path / shard, tmp_path / (shard + ".ansz"))
        (tmp_path / shard).unlink()
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 0},
        "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}))
    (tmp_path / "config.json").write_text("{}")
    loaded = ansz.load_model_dir(tmp_path, framework="pt", threads=2)
    assert sorted(loaded) == sorted(names)
    model = _model(5)
    model.load_state_dict(loaded, strict=True)
    _assert_same_state(model, reference)
