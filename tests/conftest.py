import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_world():
    from clipshift.world import World, WorldSpec

    return World(
        WorldSpec.model_validate({"concepts": {"n_classes": 5}, "backgrounds": {"n_backgrounds": 6}})
    )
