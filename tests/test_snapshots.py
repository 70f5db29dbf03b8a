"""open_clip snapshot folders (the Hugging Face hub layout) and `hf-hub:ORG/NAME` from the local cache:
built here from a random-initialised tiny CLIP, never downloaded."""

import json

import pytest
import torch
from safetensors.torch import save_file

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.evaluate.model import open_model
from clipshift.models.factory import ModelConfig, build_clip, open_clip_config
from clipshift.models.text import OpenClipTokenizer

MEAN, STD = [0.4, 0.45, 0.5], [0.25, 0.26, 0.27]


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    tok = OpenClipTokenizer()
    model = build_clip(ModelConfig(), tok).eval()
    return model, open_clip_config(ModelConfig(), tok)


def write_snapshot(folder, model, model_cfg, weights="open_clip_model.safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if weights.endswith(".safetensors"):
        save_file(sd, str(folder / weights))
    else:
        torch.save(sd, folder / weights)
    return folder


def same_features(a, b) -> None:
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(a.encode_image(x), b.encode_image(x), atol=1e-6)
        t = OpenClipTokenizer(int(a.context_length))(["a photo of a zorp.", "a dub"])
        assert torch.allclose(a.encode_text(t), b.encode_text(t), atol=1e-6)


@pytest.mark.parametrize("weights", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_a_snapshot_folder_loads_as_model_dir_and_as_arch_dir(tmp_path, source, weights):
    model, cfg = source
    folder = write_snapshot(tmp_path / "snap", model, cfg, weights)
    m = open_model(folder)
    assert m.kind == "clip" and m.image_size == 32 and m.pretrained == str(folder / weights)
    assert m.mean == tuple(MEAN) and m.std == tuple(STD)  # the snapshot's own preprocessing
    same_features(model, m.module)
    m2 = open_model(f"clipshift-rn-tiny:{folder}")  # ARCH:DIR, refused before
    same_features(model, m2.module)


def test_hf_hub_reads_the_local_cache_only(tmp_path, source, monkeypatch, capsys):
    model, cfg = source
    cache = tmp_path / "hub"
    repo = cache / "models--someorg--tiny-clip"
    write_snapshot(repo / "snapshots" / "0123abcd", model, cfg)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a download attempt would fail loudly, not fetch
    m = open_model("hf-hub:someorg/tiny-clip")
    same_features(model, m.module)
    with pytest.raises(UserError, match=r"not in the local Hugging Face cache '.*hub'; clipshift never"):
        open_model("hf-hub:someorg/absent")
    # the CLI: one line, exit 2
    assert main(["eval", "--model", "hf-hub:someorg/absent", "--dataset", "iid", "--n", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cache) in err[0]


def test_a_snapshot_without_weights_is_one_line(tmp_path, source):
    _, cfg = source
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    with pytest.raises(UserError, match=r"open_clip_config\.json but no weights"):
        open_model(folder)


def openai_archive(path):
    """A TorchScript archive in OpenAI's layout (what `RN50.pt` / `ViT-B-32.pt` are), from a tiny
    random-initialised ViT CLIP with OpenAI's quick-GELU: `torch.jit.script` of open_clip's CLIP, whose
    parameter names are OpenAI's."""
    from open_clip.model import CLIP

    torch.manual_seed(1)
    model = CLIP(
        embed_dim=32,
        vision_cfg={"image_size": 32, "patch_size": 16, "width": 64, "layers": 1, "head_width": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
        quick_gelu=True,
    ).eval()
    with torch.no_grad():  # OpenAI released fp16 weights, and open_clip's builder casts to fp16 and back
        for p in model.parameters():
            p.copy_(p.half().float())
    with pytest.warns(FutureWarning):  # torch deprecates TorchScript; OpenAI's archives are TorchScript
        torch.jit.save(torch.jit.script(model), str(path))
    return model


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_an_openai_torchscript_archive_loads_by_path_and_as_arch_path(tmp_path, capsys):
    model = openai_archive(tmp_path / "ViT-B-32.pt")
    for spec in (tmp_path / "ViT-B-32.pt", f"ViT-B-32:{tmp_path / 'ViT-B-32.pt'}"):
        m = open_model(spec)
        assert m.kind == "clip" and m.image_size == 32
        assert m.mean == (0.48145466, 0.4578275, 0.40821073)  # OpenAI's preprocessing
        same_features(model, m.module)
    # a zip that is not a TorchScript archive still reads as a torch.save file
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    from clipshift.models.checkpoints import is_torchscript

    assert is_torchscript(tmp_path / "ViT-B-32.pt") and not is_torchscript(tmp_path / "plain.pt")
