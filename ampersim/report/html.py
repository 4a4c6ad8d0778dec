"""Render a report Document as one self-contained HTML page (inline CSS, figures as base64 PNG)."""

from __future__ import annotations

import base64
from html import escape

from ampersim.report.document import Document, Figure, Section, Table, cell

CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; color: #1d232a;
       max-width: 1180px; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.5; }
h1 { font-size: 1.7rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; padding-bottom: 0.2rem; border-bottom: 2px solid #dde3ea; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; font-size: 0.9rem; color: #4a5561; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
nav ol { columns: 2; font-size: 0.95rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e6eaef; }
table { border-collapse: collapse; margin: 0.8rem 0 1.2rem; font-size: 0.86rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; color: #38424c; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e6eaef; vertical-align: top; }
th { background: #f3f6f9; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
td.text { max-width: 46rem; overflow-wrap: break-word; }
details { margin: 0.4rem 0; } summary { cursor: pointer; font-weight: 600; color: #38424c; }
ul.notes { font-size: 0.9rem; color: #38424c; }
p.source { font-size: 0.8rem; color: #5b6670; margin: -0.8rem 0 1.2rem; max-width: 60rem; }
"""


def render_html(doc: Document) -> str:
    """The whole page; opens offline (no external resources)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in doc.sections)
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in doc.meta)
    body = "".join(_section(s) for s in doc.sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<h1>{escape(doc.title)}</h1>\n<dl class="meta">{meta}</dl>\n<nav><ol>{toc}</ol></nav>\n'
        f"{body}</body>\n</html>\n"
    )


def _section(s: Section) -> str:
    parts = [f'<section id="{s.anchor}">\n<h2>{escape(s.title)}</h2>\n']
    parts += [f"<p>{escape(p)}</p>\n" for p in s.paragraphs]
    parts += [_figure(f) for f in s.figures]
    parts += [_table(t) for t in s.tables]
    if s.bullets:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(b)}</li>" for b in s.bullets) + "</ul>\n")
    parts.append("</section>\n")
    return "".join(parts)


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(f.alt)}"></figure>\n' + _source(f.source)


def _source(text: str) -> str:
    return f'<p class="source">Source: {escape(text)}</p>\n' if text else ""


def _table(t: Table) -> str:
    numeric = {c: t.numeric(c) for c in t.columns}
    head = "".join(f"<th>{escape(t.title(c))}</th>" for c in t.columns)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if numeric[c] else "text"}">{escape(cell(r.get(c)))}</td>' for c in t.columns)
        + "</tr>"
        for r in t.rows
    )
    if t.collapsed:
        return (
            f"<details><summary>{escape(t.caption)}</summary>\n"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n{_source(t.source)}</details>\n"
        )
    caption = f"<caption>{escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n{_source(t.source)}"
