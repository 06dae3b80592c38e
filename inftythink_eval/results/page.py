"""``leaderboard/index.html``: one static page, no server, no network.

Owns: the HTML markup, in the order a visitor reads it: the depth curve, the frontiers (plot, points and
equal-accuracy tables), then the same per-record tables as LEADERBOARD.md (one ``<tr
class="record" data-id=...>`` per stored record; the frontiers' points and
equal-accuracy tables), the reported rows, the plots inlined as SVG, and a few lines of JavaScript (click a header to
sort, type to filter) that write the number of shown records into the page.

Does not know: how the rows and plots are computed (``render``, ``plots``).
"""

from __future__ import annotations

import datetime as dt
from html import escape

from inftythink_eval.results import frontier, plots, render
from inftythink_eval.results.records import Record

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:12.5px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}
td.wide{white-space:normal;text-align:left;max-width:28rem}
.reported{background:#fff8e6}.note{color:#666;font-size:12.5px}
.plot svg{max-width:100%;height:auto}
#filter{padding:4px 8px;width:20rem}
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.record'));
  var counter = document.getElementById('shown');
  function update() {
    var q = document.getElementById('filter').value.toLowerCase();
    var shown = 0;
    rows.forEach(function (tr) {
      var hit = tr.textContent.toLowerCase().indexOf(q) >= 0;
      tr.style.display = hit ? '' : 'none';
      if (hit) { shown += 1; }
    });
    counter.textContent = String(shown);
  }
  document.getElementById('filter').addEventListener('input', update);
  document.querySelectorAll('table.sortable th').forEach(function (th, _) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var col = Array.prototype.indexOf.call(th.parentNode.children, th);
      var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      var key = function (tr) { var t = tr.children[col].textContent.replace(/[,%+]/g, ''); var n = parseFloat(t); return isNaN(n) ? t : n; };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir;
      }).forEach(function (tr) { body.appendChild(tr); });
    });
  });
  update();
  document.body.dataset.ready = 'yes';
})();
"""


def _table(columns: tuple, rows: list[dict], row_attrs) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td{" class=wide" if c in ("source", "engine · hardware") else ""}>{escape(str(row.get(c, "")))}</td>'
                        for c in columns)
        body.append(f"<tr {row_attrs(row)}>{cells}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _record_attrs(row: dict) -> str:
    r: Record = row["record"]
    return (f'class="record" data-id="{escape(r.record_id)}" data-model="{escape(r.model)}" '
            f'data-mode="{escape(r.mode)}" data-task="{escape(r.task)}"')


def _measured(records: list[Record]) -> str:
    parts = []
    for group, tasks in render.table_rows(records).items():
        parts.append(f"<h2>{escape(render.group_title(group))}</h2>")
        for task, rows in tasks.items():
            parts.append(f"<h3>{escape(task)}</h3>" + _table(render.COLUMNS, rows, _record_attrs))
    return "".join(parts) or "<p>No measured records yet: run <code>inftythink leaderboard import OUT</code>.</p>"


def _frontiers(records: list[Record]) -> str:
    found = frontier.groups(records)
    if not found:
        return ""
    parts = ['<h2 id="frontiers">Frontiers</h2>', f'<p class="note">{escape(render.FRONTIER_NOTE)}</p>']
    for (task, model), points in found.items():
        columns, rows = frontier.point_rows(points)
        ref, goal, equal = frontier.equal_accuracy(points)
        parts.append(f"<h3>{escape(task)} · {escape(model)}</h3>" + _table(columns, rows, lambda row: 'class="point"'))
        parts.append(f'<p class="note">Equal accuracy. {escape(frontier.target_note(ref, goal, False))}</p>')
        if equal:
            parts.append(_table(frontier.EQUAL_COLUMNS, frontier.equal_rows(equal), lambda row: 'class="equal"'))
    return "".join(parts)


def _reported(reported: list) -> str:
    parts = ["<h2>Reported in the papers (not measured here)</h2>", f'<p class="note">{escape(render.REPORTED_NOTE)}</p>']
    for bench, rows in render.reported_rows(reported).items():
        parts.append(f"<h3>{escape(bench)} (reported)</h3>"
                     + _table(render.REPORTED_COLUMNS, rows, lambda row: 'class="reported"'))
    return "".join(parts)


LEAD = ("depth-curve", "frontier")  # what a visitor comes for, first: the depth curve, then the frontiers


def _plot_sections(records: list[Record], anchors) -> str:
    parts = []
    for anchor in anchors:
        title, draw = plots.PLOTS[anchor]
        svg = draw(records)
        empty = plots.EMPTY.get(anchor, "No stored record carries the data for this plot yet (it needs runs of "
                                         "the inftythink model, whose traces hold rounds and tokens).")
        body = svg if svg else f'<p class="note">{empty}</p>'
        parts.append(f'<section class="plot" id="{anchor}"><h3>{escape(title)}</h3>{body}</section>')
    return "".join(parts)


def _lead(records: list[Record]) -> str:
    """The depth curve, then the frontiers (their plot and tables), before the per-record tables."""
    return ('<h2 id="depth">The depth curve</h2>' + _plot_sections(records, LEAD[:1]) + _frontiers(records)
            + _plot_sections(records, LEAD[1:]))


def _plots(records: list[Record]) -> str:
    return "<h2>More plots</h2>" + _plot_sections(records, [a for a in plots.PLOTS if a not in LEAD])


def build(records: list[Record], reported: list) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inftythink-eval leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body data-records="{len(records)}">
<h1>inftythink-eval leaderboard</h1>
<p class="note">{len(records)} measured record(s); rendered {escape(stamp)} by <code>inftythink leaderboard render</code>.
ACC: mean pass@1 (k samples per question, then n questions) with a 95% interval. TOK: mean generated tokens per sample,
all rounds. LAT: mean seconds per sample on the listed engine and hardware. Δ: against the same model's latest vanilla
run on the same task, else its vanilla twin's (marked twin).</p>
<p><input id="filter" placeholder="filter records (model, mode, task, ...)"> showing <b id="shown">{len(records)}</b>
of {len(records)} records</p>
{_lead(records)}
<h2 id="records">Every record</h2>
{_measured(records)}
{_plots(records)}
{_reported(reported)}
<script>{SCRIPT}</script>
</body></html>
"""
