"""Render a report Document as Markdown; figures become PNG files in a folder beside the .md file."""

from __future__ import annotations

import html
from pathlib import Path

from ampersim.report.document import Document, Section, Table, cell


def assets_dir(md_path: Path) -> Path:
    """Folder for the figures of ``md_path`` ('report.md' -> 'report_files')."""
    return md_path.with_name(f"{md_path.stem}_files")


def render_markdown(doc: Document, md_path: Path) -> tuple[str, dict[Path, bytes]]:
    """Markdown text and the figure files it links to (paths relative to the .md file's folder)."""
    folder = assets_dir(md_path).name
    files: dict[Path, bytes] = {}
    out = [f"# {doc.title}", ""]
    out += [f"- **{k}**: {_inline(v)}" for k, v in doc.meta]
    out.append("")
    out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(doc.sections, 1)]
    for s in doc.sections:
        out += ["", _section(s, folder, files)]
    return "\n".join(out).rstrip() + "\n", files


def _section(s: Section, folder: str, files: dict[Path, bytes]) -> str:
    out = [f'<a id="{s.anchor}"></a>', f"## {s.title}", ""]
    for p in s.paragraphs:
        out += [_inline(p), ""]
    for f in s.figures:
        rel = Path(folder) / f"{f.name}.png"
        files[rel] = f.png
        out += [f"![{f.alt}]({rel.as_posix()})", ""] + _source(f.source)
    for t in s.tables:
        out += [_table(t), ""]
    out += [f"- {_inline(b)}" for b in s.bullets]
    return "\n".join(out).rstrip()


def _source(text: str) -> list[str]:
    return [f"Source: {_inline(text)}", ""] if text else []


def _inline(text: str) -> str:
    return text.replace("|", "\\|")


def _table(t: Table) -> str:
    head = "| " + " | ".join(_inline(t.title(c)) for c in t.columns) + " |"
    rule = "|" + "|".join("---:" if t.numeric(c) else "---" for c in t.columns) + "|"
    rows = ["| " + " | ".join(_inline(cell(r.get(c))).replace("\n", " ") for c in t.columns) + " |" for r in t.rows]
    if t.collapsed:  # folded like the HTML (GitHub and most viewers render <details>)
        return "\n".join(
            [
                f"<details><summary>{html.escape(t.caption)}</summary>",
                "",
                head,
                rule,
                *rows,
                "",
                *_source(t.source),
                "</details>",
            ]
        )
    caption = [f"**{_inline(t.caption)}**", ""] if t.caption else []
    return "\n".join([*caption, head, rule, *rows, "", *_source(t.source)]).rstrip()
