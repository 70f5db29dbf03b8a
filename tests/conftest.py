import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_world():
    from clipshift.world import World, WorldSpec

    return World(
        WorldSpec.model_validate({"concepts": {"n_classes": 5}, "backgrounds": {"n_backgrounds": 6}})
    )


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """Caches the CLI keeps in the default location ($CLIPSHIFT_CACHE: decoded images, checkpoint
    digests) go to a temporary folder for the module, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPSHIFT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def write_objectnet_mappings(m, folder_to_label: dict[str, str]) -> None:
    """ObjectNet's four mapping files in folder `m`: the given folders' labels; Mug -> coffee mug (504),
    Pen -> ballpoint (418) and fountain pen (563) among 1,000 ImageNet names (any other label maps to no
    ImageNet class)."""
    import json

    m.mkdir(parents=True)
    (m / "folder_to_objectnet_label.json").write_text(json.dumps(folder_to_label))
    (m / "objectnet_to_imagenet_1k.json").write_text(
        json.dumps({"Mug": "coffee mug", "Pen": "ballpoint; fountain pen"})
    )
    names = [f"class {i}" for i in range(1000)]
    names[504], names[418], names[563] = "coffee mug", "ballpoint", "fountain pen"
    (m / "imagenet_to_label_2012_v2").write_text("\n".join(names) + "\n")
    (m / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps({str(i): i for i in range(1000)}))
