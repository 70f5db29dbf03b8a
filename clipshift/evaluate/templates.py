"""Zero-shot prompt templates and class-name files."""

from __future__ import annotations

from pathlib import Path

from clipshift.errors import UserError

TEMPLATE_SETS = ("world", "openai", "simple", "single")
SINGLE = ["a photo of a {}."]


def resolve_templates(spec: str) -> list[str]:
    """Templates with one `{}` for the class name: `world` (the world's caption-style prompts),
    `openai` (open_clip's 80 OpenAI ImageNet templates), `simple` (open_clip's 7), `single`
    ("a photo of a {}."), or a file with one template per line (`{}` or CLIP_benchmark's `{c}`)."""
    if spec == "world":
        from clipshift.world.captions import world_templates

        return world_templates()
    if spec in ("openai", "simple"):
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

        fns = OPENAI_IMAGENET_TEMPLATES if spec == "openai" else SIMPLE_IMAGENET_TEMPLATES
        return [f("{}") for f in fns]  # open_clip's templates are functions of the class name
    if spec == "single":
        return list(SINGLE)
    p = Path(spec).expanduser()
    if not p.is_file():
        raise UserError(
            f"templates {spec!r}: not one of {', '.join(TEMPLATE_SETS)} "
            "and no such file (one template per line)"
        )
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = [t.replace("{c}", "{}") for t in lines]
    if not out:
        raise UserError(f"{p}: no templates in it")
    for i, t in enumerate(out, 1):
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            raise UserError(
                f"{p}:{i}: template {lines[i - 1]!r} needs exactly one {{}} (or {{c}}) for the class name"
            )
    return out


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (blank lines ignored); `index<TAB>name` lines (CLIP_benchmark's metadata
    format) are read too."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{p}: class-name file not found")
    names = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        names.append((parts[1] if len(parts) == 2 and parts[0].strip().isdigit() else line).strip())
    if not names:
        raise UserError(f"{p}: no class names in it")
    return names


def check_count(names: list[str], expected: int, source: str, what: str) -> None:
    if len(names) != expected:
        raise UserError(f"{source}: {len(names)} class names, but {what} has {expected} classes")
