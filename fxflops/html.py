"""A report as one self-contained HTML file, and as a notebook view.

:func:`report_html` writes a page with no network access (styles, script and data inline): the
summary and convention line, an icicle of FLOPs by module that zooms into a module when it is
clicked (a breadcrumb goes back up), the op and category tables, fallbacks and uncounted nodes.
FLOPs are carried as exact integers (strings in the page's data, so counts above 2**53 stay
exact). :func:`notebook_html` is the lighter view ``FlopReport._repr_html_`` returns: a collapsible
module tree (``<details>``) with exact counts and shares, no script.

Opening the page with ``#selftest`` clicks the largest child of the model and writes the result
into ``#selftest`` (the browser test reads it with ``chromium --dump-dom``).
"""

from __future__ import annotations

import html
import json
from typing import Any

from fxflops.report import FlopReport
from fxflops.units import format_flops


def module_tree_data(report: FlopReport) -> dict[str, Any]:
    """``{name, path, type, flops, children}`` for the whole model, children in graph order,
    ``flops`` inclusive and exact (a decimal string)."""
    from fxflops.render import module_tree

    flops = report.by_module()
    nodes: dict[str, dict[str, Any]] = {}
    for path in module_tree(report, None):
        nodes[path] = {"name": path.rsplit(".", 1)[-1] if path else report.model, "path": path,
                       "type": report.module_types.get(path, report.model if not path else ""),
                       "flops": str(flops.get(path, 0)), "children": []}
        if path:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            while parent not in nodes:  # a module path whose parent owns no node of its own
                parent = parent.rsplit(".", 1)[0] if "." in parent else ""
            nodes[parent]["children"].append(nodes[path])
    return nodes[""]


def _rows(mapping: dict[str, Any], total: int) -> str:
    from fxflops.render import exact as _exact
    from fxflops.render import human as _human
    from fxflops.render import share as _share

    cells = []
    for name, value in mapping.items():
        if not value:
            continue
        cells.append(f"<tr><td>{html.escape(str(name))}</td><td class=n>{_human(value)}</td>"
                     f"<td class=n>{_exact(value)}</td><td class=n>{_share(value, total)}</td></tr>")
    return "".join(cells) or "<tr><td colspan=4>none</td></tr>"


_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#555;margin:2px 0}
#crumbs{margin:16px 0 6px;font-size:13px}
#crumbs a{color:#0550ae;cursor:pointer;text-decoration:underline}
#icicle{position:relative;width:100%;border:1px solid #ccc}
.cell{position:absolute;box-sizing:border-box;border:1px solid #fff;overflow:hidden;white-space:nowrap;
  font-size:12px;padding:2px 4px;cursor:pointer;color:#111}
.cell:hover{filter:brightness(0.9)}
table{border-collapse:collapse;margin:8px 0 20px}
td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
h2{font-size:16px;margin:20px 0 4px}
"""

_SCRIPT = """
const DATA = JSON.parse(document.getElementById('data').textContent);
const ROW = 26;
const COLORS = ['#9ecae1','#a1d99b','#fdae6b','#bcbddc','#fc9272','#c7e9c0','#fdd0a2','#dadaeb'];
function depth(n){return n.children.length ? 1 + Math.max(...n.children.map(depth)) : 1;}
function fmt(s){return BigInt(s).toLocaleString('en-US');}
function find(n, path){if(n.path===path)return n;for(const c of n.children){const f=find(c,path);if(f)return f;}
  return null;}
function render(path){
  const root = find(DATA, path) || DATA;
  const box = document.getElementById('icicle');
  box.innerHTML = '';
  box.style.height = (depth(root) * ROW) + 'px';
  const total = Number(root.flops) || 1;
  function place(n, level, left, width){
    if (width < 0.05) return;
    const div = document.createElement('div');
    div.className = 'cell';
    div.dataset.path = n.path;
    div.style.left = left + '%'; div.style.width = width + '%';
    div.style.top = (level * ROW) + 'px'; div.style.height = ROW + 'px';
    div.style.background = COLORS[level % COLORS.length];
    const share = (100 * Number(n.flops) / Number(DATA.flops || 1)).toFixed(1);
    div.title = (n.path || '(model)') + ' (' + n.type + '): ' + fmt(n.flops) + ' FLOPs, ' + share + '% of the model';
    div.textContent = n.name + ' ' + fmt(n.flops);
    div.addEventListener('click', ev => {ev.stopPropagation(); render(n.path);});
    box.appendChild(div);
    let offset = left;
    for (const c of n.children){
      const w = width * Number(c.flops) / (Number(n.flops) || 1);
      place(c, level + 1, offset, w);
      offset += w;
    }
  }
  place(root, 0, 0, 100);
  const crumbs = document.getElementById('crumbs');
  crumbs.innerHTML = '';
  const parts = root.path ? root.path.split('.') : [];
  const links = [['', DATA.name]].concat(parts.map((p, i) => [parts.slice(0, i + 1).join('.'), p]));
  links.forEach(([p, label], i) => {
    if (i) crumbs.appendChild(document.createTextNode(' / '));
    const a = document.createElement('a'); a.textContent = label; a.dataset.path = p;
    a.addEventListener('click', () => render(p)); crumbs.appendChild(a);
  });
  document.getElementById('zoomed').textContent = (root.path || '(model)') + ': ' + fmt(root.flops) + ' FLOPs';
}
render('');
if (location.hash === '#selftest') {
  const first = [...DATA.children].sort((a, b) => Number(b.flops) - Number(a.flops))[0];
  const out = document.createElement('pre'); out.id = 'selftest';
  if (first) {
    document.querySelector('.cell[data-path="' + first.path + '"]').click();
    const cells = document.querySelectorAll('.cell').length;
    const zoomed = document.getElementById('zoomed').textContent;
    out.textContent = 'selftest: zoomed into ' + zoomed + ' (' + cells + ' cells)';
  } else { out.textContent = 'selftest: no children'; }
  document.body.appendChild(out);
}
"""


def report_html(report: FlopReport, title: str | None = None) -> str:
    """The self-contained HTML page of ``report`` (see the module docstring)."""
    if not isinstance(report.total, int):
        raise ValueError("an HTML report needs concrete counts: report.evaluate(...) first")
    title = title or report.model
    data = json.dumps(module_tree_data(report)).replace("</", "<\\/")
    uncounted = "".join(f"<li>{html.escape(r.name)}: {html.escape(r.target)} in '{html.escape(r.module)}' at "
                        f"{html.escape(r.source or 'unknown source line')}</li>" for r in report.uncounted)
    fallbacks = "".join(f"<li>{html.escape(m or '(model)')}: {html.escape(why)}</li>"
                        for m, why in report.fallbacks.items())
    macs = f", {report.macs:,} MACs" if report.macs else ""
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>fxflops: {html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)} ({html.escape(report.model)})</h1>
<p class=meta><b>{format_flops(report.total)}</b> ({report.total:,} FLOPs{macs}), {report.params:,} parameters</p>
<p class=meta>unit: {html.escape(report.convention_description or report.unit)}</p>
<p class=meta>captured by: {html.escape(report.trace)}; causal attention: {html.escape(report.causal)}</p>
<div id=crumbs></div><p class=meta id=zoomed></p>
<div id=icicle></div>
<p class=meta>Click a module to zoom into it; the path above goes back up.</p>
<h2>Ops</h2><table><tr><th>op</th><th>FLOPs</th><th>exact</th><th>share</th></tr>
{_rows(report.by_op(), report.total)}</table>
<h2>Categories</h2><table><tr><th>category</th><th>FLOPs</th><th>exact</th><th>share</th></tr>
{_rows({str(k): v for k, v in report.by_category().items()}, report.total)}</table>
<h2>Uncounted nodes</h2><ul>{uncounted or "<li>none: every node had a rule</li>"}</ul>
<h2>Fallbacks</h2><ul>{fallbacks or "<li>none</li>"}</ul>
<script type=application/json id=data>{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def notebook_html(report: FlopReport, max_depth: int = 6) -> str:
    """A collapsible module tree with exact counts and shares (no script), for notebooks."""
    if not isinstance(report.total, int):
        return f"<pre>{html.escape(repr(report))}</pre>"
    tree = module_tree_data(report)
    total = report.total or 1

    def item(node: dict[str, Any], level: int) -> str:
        flops = int(node["flops"])
        label = (f"<code>{html.escape(node['name'])}</code> {html.escape(node['type'])}: "
                 f"{format_flops(flops)} ({flops:,}, {100 * flops / total:.1f}%)")
        children = [c for c in node["children"] if int(c["flops"])] if level < max_depth else []
        if not children:
            return f"<div style='margin-left:{16 * bool(level)}px'>{label}</div>"
        inner = "".join(item(c, level + 1) for c in children)
        opened = " open" if level == 0 else ""
        return (f"<details{opened} style='margin-left:{16 * bool(level)}px'><summary>{label}</summary>"
                f"{inner}</details>")

    head = html.escape(repr(report))
    return f"<div><p><b>{head}</b></p>{item(tree, 0)}</div>"
