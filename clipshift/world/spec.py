"""WorldSpec: the validated, serialisable description of a procedural world."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from clipshift.world import shifts
from clipshift.world.names import BACKGROUNDS


def _registered_domain(name: str) -> str:
    # the registry, not a Literal, lists the domains; the message keeps pydantic's Literal wording
    if name not in shifts.domain_names():
        raise ValueError(f"Input should be {shifts.choices(shifts.domain_names())}")
    return name


Domain = Annotated[str, AfterValidator(_registered_domain)]
Detail = Literal["size", "pattern", "colour", "background", "domain"]
CaptionLevel = Literal["name", "template", "attributes", "full"]

LEVEL_DETAILS: dict[str, list[str]] = {
    "name": [],
    "template": [],
    "attributes": ["size", "pattern", "colour"],
    "full": ["size", "pattern", "colour", "background", "domain"],
}


def _photo_only() -> dict[str, float]:
    return {shifts.reference_domain(): 1.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConceptSpec(_Strict):
    n_classes: int = Field(10, ge=2, le=1000, description="number of classes (concepts) K")
    names: list[str] | None = Field(None, description="class names; generated from the seed if omitted")
    core_variation: float = Field(
        0.35, ge=0.0, le=1.0, description="intra-class variation of the core shape (0 = one shape per class)"
    )
    shape_complexity: int = Field(4, ge=1, le=8, description="Fourier harmonics of the silhouettes")

    @model_validator(mode="after")
    def _names_match(self) -> ConceptSpec:
        if self.names is not None:
            if len(self.names) != self.n_classes:
                raise ValueError(f"names has {len(self.names)} entries but n_classes is {self.n_classes}")
            if len(set(self.names)) != len(self.names):
                raise ValueError("names must be distinct")
        return self


class DetailSpec(_Strict):
    colour_concentration: float = Field(
        0.3,
        gt=0.0,
        le=100.0,
        description="Dirichlet concentration of each class's colour distribution "
        "(small = class-specific colours, large = colours shared across classes)",
    )
    pattern_concentration: float = Field(0.5, gt=0.0, le=100.0, description="same, for texture patterns")
    size_concentration: float = Field(1.0, gt=0.0, le=100.0, description="same, for sizes")


class BackgroundSpec(_Strict):
    n_backgrounds: int = Field(10, ge=2, le=len(BACKGROUNDS), description="number of named backgrounds B")
    rho: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="spurious strength: in training the background is the class's common one with "
        "probability rho, otherwise uniform over all B (rho = 0: independent of the class)",
    )
    salience: float = Field(
        0.12,
        ge=0.0,
        le=1.0,
        description="how distinct backgrounds look (colour and texture contrast); the default is calibrated "
        "so that rho = 0.95 costs a tiny ResNet tens of points on `counter` without reducing it to chance",
    )


class PoseSpec(_Strict):
    rotation_deg: float = Field(20.0, ge=0.0, le=180.0, description="training rotation range ±deg")
    scale_jitter: float = Field(0.1, ge=0.0, le=0.5, description="relative scale jitter in training")
    position_jitter: float = Field(
        0.12, ge=0.0, le=0.5, description="object centre jitter (fraction of image)"
    )
    shift_rotation_deg: tuple[float, float] = Field(
        (100.0, 260.0), description="rotation range of the `pose` evaluation set (deg)"
    )
    shift_scales: tuple[float, float] = Field((0.6, 1.3), description="the two scales of the `pose` set")


class CaptionSpec(_Strict):
    level: CaptionLevel = Field("full", description="descriptiveness: name | template | attributes | full")
    details: list[Detail] | None = Field(
        None, description="which details are annotated (default: those of the level)"
    )
    detail_prob: float = Field(1.0, ge=0.0, le=1.0, description="probability each listed detail is mentioned")
    synonym_prob: float = Field(
        0.0, ge=0.0, le=1.0, description="probability a word is replaced by a synonym"
    )
    missing_name_prob: float = Field(
        0.0, ge=0.0, le=1.0, description="probability the class name is missing (web alt-text)"
    )

    def annotated(self) -> list[str]:
        return list(self.details) if self.details is not None else LEVEL_DETAILS[self.level]


class FrequencySpec(_Strict):
    profile: Literal["uniform", "zipf"] = Field("uniform", description="class-frequency profile of training")
    alpha: float = Field(1.0, ge=0.0, le=4.0, description="Zipf exponent: p_k ∝ rank^-alpha")
    trim_tail: int = Field(0, ge=0, description="the rarest k classes are cut to `trim_shots` samples")
    trim_shots: int = Field(0, ge=0, le=1, description="0 or 1 training samples for trimmed classes")
    shuffle_ranks: bool = Field(True, description="assign frequency ranks to classes in a seeded order")


class OpenWorldSpec(_Strict):
    n_concepts: int = Field(0, ge=0, le=1000, description="extra concepts seen only in training captions")
    fraction: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of training samples that show them")


class WorldSpec(_Strict):
    """Everything that defines a world; samples are deterministic in (spec, split, index)."""

    seed: int = Field(0, ge=0, description="world seed: names, shapes, palettes, every sample")
    image_size: int = Field(32, ge=16, le=256, description="square image side in pixels")
    concepts: ConceptSpec = ConceptSpec()
    details: DetailSpec = DetailSpec()
    backgrounds: BackgroundSpec = BackgroundSpec()
    domains: dict[Domain, float] = Field(
        default_factory=_photo_only, description="training mixture over domains (weights)"
    )
    pose: PoseSpec = PoseSpec()
    captions: CaptionSpec = CaptionSpec()
    frequency: FrequencySpec = FrequencySpec()
    open_world: OpenWorldSpec = OpenWorldSpec()

    @field_validator("domains")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError(f"at least one domain needed, from {sorted(shifts.domain_names())}")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("domain weights must be ≥ 0 and sum to > 0")
        return v

    @model_validator(mode="after")
    def _tail_fits(self) -> WorldSpec:
        if self.frequency.trim_tail >= self.concepts.n_classes:
            raise ValueError(
                f"frequency.trim_tail = {self.frequency.trim_tail} must be < concepts.n_classes "
                f"= {self.concepts.n_classes}"
            )
        return self
