"""WorldSpec: the validated, serialisable description of a procedural world."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from clipshift.world import shifts
from clipshift.world.names import ALL_COLOURS, ALL_PATTERNS, ALL_SIZES, MAX_HABITATS


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
    n_colours: int = Field(
        10,
        ge=2,
        le=len(ALL_COLOURS),
        description="colours in the vocabulary (the first 10 are the originals)",
    )
    n_patterns: int = Field(
        4,
        ge=1,
        le=len(ALL_PATTERNS),
        description="fill patterns (plain, striped, spotted, checked, then more)",
    )
    n_sizes: int = Field(3, ge=1, le=len(ALL_SIZES), description="sizes (small, medium, large, tiny, huge)")


class BackgroundSpec(_Strict):
    n_backgrounds: int = Field(
        10,
        ge=2,
        le=MAX_HABITATS,
        description="number of backgrounds B: the 16 named habitats first, then generated two-word ones",
    )
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
    superclass_prob: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="probability a caption also names the superclass ('a zorp, a kind of blorp'); "
        "needs hierarchy.superclasses > 0",
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


class HierarchySpec(_Strict):
    superclasses: int = Field(
        0,
        ge=0,
        le=100,
        description="superclasses S: families of fine-grained sibling classes sharing a shape family, "
        "typical habitats and detail laws (0 = no hierarchy); class k belongs to family k * S // K",
    )
    names: list[str] | None = Field(None, description="superclass names; generated from the seed if omitted")
    sibling_spread: float = Field(
        0.1,
        gt=0.0,
        le=0.3,
        description="siblings' shapes lie within 1.5x this of their family's prototype and at least this far "
        "apart (prototypes are at least 0.32 apart; an instance deforms its class shape by about 0.12 at "
        "core_variation 0.35)",
    )
    habitats_per_superclass: int = Field(
        3, ge=1, le=MAX_HABITATS, description="typical habitats of a family: a class's common habitat is one"
    )
    detail_inheritance: float = Field(
        20.0,
        gt=0.0,
        le=1000.0,
        description="Dirichlet concentration of each class's colour, pattern and size laws around its "
        "family's (large: siblings share their family's laws)",
    )


# Fields added for worlds at scale. Left out of a spec's serialised form while they hold their defaults, so
# an existing world's spec, and the run ids hashed from it, do not change (`complete=True` context: all).
_SCALE_DEFAULTS: dict[str, dict[str, Any]] = {
    "details": {"n_colours": 10, "n_patterns": 4, "n_sizes": 3},
    "captions": {"superclass_prob": 0.0},
}


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
    hierarchy: HierarchySpec = HierarchySpec()

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

    @model_validator(mode="after")
    def _hierarchy_fits(self) -> WorldSpec:
        h = self.hierarchy
        k = self.concepts.n_classes
        if h.superclasses > k:
            raise ValueError(f"hierarchy.superclasses = {h.superclasses} must be ≤ concepts.n_classes = {k}")
        if h.names is not None:
            if len(h.names) != h.superclasses:
                raise ValueError(
                    f"hierarchy.names has {len(h.names)} entries but superclasses is {h.superclasses}"
                )
            if len(set(h.names)) != len(h.names):
                raise ValueError("hierarchy.names must be distinct")
            clash = set(h.names) & set(self.concepts.names or ())
            if clash:
                raise ValueError(f"hierarchy.names {sorted(clash)} are also class names")
        if h.superclasses and h.habitats_per_superclass > self.backgrounds.n_backgrounds:
            raise ValueError(
                f"hierarchy.habitats_per_superclass = {h.habitats_per_superclass} must be ≤ "
                f"backgrounds.n_backgrounds = {self.backgrounds.n_backgrounds}"
            )
        if self.captions.superclass_prob and not h.superclasses:
            raise ValueError("captions.superclass_prob > 0 needs hierarchy.superclasses > 0")
        return self

    @model_serializer(mode="wrap")
    def _omit_unused_scale_fields(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if not isinstance(data, dict) or (info.context or {}).get("complete"):
            return data
        if self.hierarchy == HierarchySpec():
            data.pop("hierarchy", None)
        for block, defaults in _SCALE_DEFAULTS.items():
            part = data.get(block)
            if isinstance(part, dict):
                for name, value in defaults.items():
                    if part.get(name) == value:
                        part.pop(name)
        return data

    def uses_scale_vocabulary(self) -> bool:
        """Whether this world uses anything beyond the original vocabularies and the flat class list (its
        generated names then also avoid every vocabulary word)."""
        d = self.details
        return bool(
            self.hierarchy.superclasses
            or (d.n_colours, d.n_patterns, d.n_sizes) != (10, 4, 3)
            or self.backgrounds.n_backgrounds > 16
        )
