"""The taxonomy of Fuest et al. (2024) as data (`taxonomy.yaml` beside this file), checked on load, and the
tables of the appendix computed from it: Table 1 (what each kind of guidance needs), Table 2 (paradigm x
downstream task), the §3.2 hierarchy of Fig. 5, methods per year (Fig. 1, recomputed), and the coverage of
the book (which cells of the taxonomy a chapter runs).
"""
from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources

import yaml

PARTS = {
    "background": "§2 Background",
    "for_representation": "§3.1 Diffusion models for representation learning",
    "for_guidance": "§3.2 Representation learning for diffusion model guidance",
    "post_survey": "After the survey",
}
# Table 2's paradigms and downstream tasks, in the survey's order
PARADIGMS = ("Generative augmentation", "Leveraging intermediate activations", "Diffusion model reconstruction",
             "Diffusion model knowledge transfer", "Joint diffusion models")
TASKS = ("Classification", "Semantic segmentation", "Panoptic segmentation", "Semantic correspondence",
         "Depth estimation", "Image editing", "Image interpolation")
GUIDANCE_GROUPS = ("Assignment-based guidance", "Representation-based guidance", "Objective-based guidance")
# the survey's Table 1: (classifier-free, annotation-free, online learning) per kind of guidance
GUIDANCE_PROPERTIES = {
    "Classifier guidance": ("dhariwal2021adm", False, False, False),
    "Classifier-free guidance": ("ho2022cfg", True, False, False),
    "Self-guidance": ("hu2023selfguided", True, True, False),
    "Online guidance": ("hu2023online", True, True, True),
}
_ARXIV = re.compile(r"^\d{4}\.\d{4,5}$")
_FIELDS = ("key", "name", "title", "authors", "venue", "year", "arxiv", "place")


@dataclass(frozen=True)
class Method:
    key: str                 # its references.bib key
    name: str
    title: str
    authors: str
    venue: str
    year: int
    arxiv: str | None
    part: str
    group: str
    tasks: tuple = ()
    chapter: str | None = None   # the notebook that runs it, e.g. "notebooks/02_backbones"
    section: str | None = None   # the anchor of the section in it, e.g. "one-contract-three-backbones"

    @property
    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None


class TaxonomyError(ValueError):
    """An entry of taxonomy.yaml is incomplete or inconsistent; the message names it."""


def load(text: str | None = None) -> list[Method]:
    """The methods of taxonomy.yaml (or of the YAML `text`), checked: every field present, keys unique,
    a known part, Table 2 paradigms and tasks and §3.2 groups from the survey's lists, arXiv ids well formed."""
    if text is None:
        text = resources.files(__package__).joinpath("taxonomy.yaml").read_text()
    entries = yaml.safe_load(text)["methods"]
    methods, seen = [], set()
    for e in entries:
        missing = [f for f in _FIELDS if f not in e]
        if missing:
            raise TaxonomyError(f"{e.get('key', e)}: missing {missing}")
        place = e["place"]
        m = Method(key=e["key"], name=e["name"], title=e["title"], authors=e["authors"], venue=e["venue"],
                   year=int(e["year"]), arxiv=e["arxiv"], part=place["part"], group=place["group"],
                   tasks=tuple(place.get("tasks", ())), chapter=e.get("chapter"), section=e.get("section"))
        if m.key in seen:
            raise TaxonomyError(f"{m.key}: listed twice")
        seen.add(m.key)
        if m.part not in PARTS:
            raise TaxonomyError(f"{m.key}: unknown part {m.part!r}; one of {list(PARTS)}")
        if m.part == "for_representation" and (m.group not in PARADIGMS or not m.tasks
                                               or not set(m.tasks) <= set(TASKS)):
            raise TaxonomyError(f"{m.key}: Table 2 needs a paradigm of {PARADIGMS} and tasks of {TASKS}")
        if m.part == "for_guidance" and m.group not in GUIDANCE_GROUPS:
            raise TaxonomyError(f"{m.key}: §3.2 group must be one of {GUIDANCE_GROUPS}")
        if m.section and not m.chapter:
            raise TaxonomyError(f"{m.key}: a section needs its chapter")
        if m.arxiv is not None and not _ARXIV.match(str(m.arxiv)):
            raise TaxonomyError(f"{m.key}: arXiv id {m.arxiv!r} is not of the form 2401.01234")
        methods.append(m)
    return methods


def runnable(methods) -> list[Method]:
    return [m for m in methods if m.chapter]


def table2(methods) -> dict:
    """{paradigm: {task: [methods]}} over the survey's Table 2 (a method may sit in several task columns)."""
    out = {p: {t: [] for t in TASKS} for p in PARADIGMS}
    for m in methods:
        if m.part == "for_representation":
            for t in m.tasks:
                out[m.group][t].append(m)
    return out


def table_guidance(methods) -> dict:
    """{group: [methods]} for §3.2, the leaves of the survey's Fig. 5."""
    return {g: [m for m in methods if m.part == "for_guidance" and m.group == g] for g in GUIDANCE_GROUPS}


def table1(methods) -> list[dict]:
    """The survey's Table 1 with each row's method looked up in the taxonomy."""
    index = {m.key: m for m in methods}
    return [{"approach": name, "method": index[key], "classifier-free": cf, "annotation-free": af,
             "online learning": ol} for name, (key, cf, af, ol) in GUIDANCE_PROPERTIES.items()]


def by_year(methods, parts=("for_representation", "for_guidance", "post_survey")) -> dict[int, int]:
    """Number of methods per publication year (as listed in the taxonomy) in the given parts."""
    return dict(sorted(Counter(m.year for m in methods if m.part in parts).items()))


def coverage(methods) -> dict:
    """{(paradigm or group, task or ''): {'runnable': [...], 'discussed': [...]}} over Table 2 and §3.2."""
    out = {}
    for m in methods:
        if m.part == "for_representation":
            cells = [(m.group, t) for t in m.tasks]
        elif m.part in ("for_guidance", "post_survey"):
            cells = [(m.group, "")]
        else:
            continue
        for cell in cells:
            out.setdefault(cell, {"runnable": [], "discussed": []})["runnable" if m.chapter else "discussed"].append(m)
    return out


def link(m: Method, relative_to: str = "notebooks") -> str:
    """A Markdown link for a method: to the chapter that runs it, else to its arXiv page, else its name."""
    if m.chapter:       # the chapter, not its section: MyST resolves page#anchor links only with heading slugs
        return f"[{m.name}]({posixpath.relpath(m.chapter, relative_to)}.ipynb)"
    return f"[{m.name}]({m.url})" if m.url else m.name


def markdown_table(header, rows) -> str:
    """A Markdown (pipe) table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
