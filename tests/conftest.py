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
