"""``codegym tree view``: a search tree as one self-contained, offline HTML page.

The tree is rendered as nested ``<details>`` elements (expand/collapse works without any script);
a few lines of inline JavaScript add "expand all", "collapse all" and "show chosen path". No CDN,
no network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
details{margin-left:1.2em;border-left:1px solid #ccc;padding-left:.6em}
summary{cursor:pointer;padding:2px 0}
.kind{font-weight:600;display:inline-block;min-width:5.5em}
.define{color:#1f6feb}.refine{color:#8250df}.translate{color:#1a7f37}.root{color:#555}
.stats{color:#666;font-size:.85em;margin-left:.5em}
.chosen>summary{background:#fff4c2}
pre{background:#f6f8fa;padding:.5em;white-space:pre-wrap;margin:.3em 0 .3em 1.2em;max-width:90ch}
.reward-1{color:#1a7f37;font-weight:600}
button{margin-right:.5em}
"""

_SCRIPT = """
function setAll(open){document.querySelectorAll('details').forEach(d=>d.open=open)}
function showChosen(){setAll(false);document.querySelectorAll('details.chosen').forEach(d=>d.open=true)}
"""


def _node_html(node: dict) -> str:
    classes = ["node"] + (["chosen"] if node.get("chosen") else [])
    reward = node.get("reward")
    reward_text = "" if reward is None else " reward=<span class='reward-%d'>%.3f</span>" % (int(reward == 1), reward)
    summary = ("<span class='kind %s'>%s</span>#%d<span class='stats'>visits=%d value=%.3f prior=%.2f%s%s</span>"
               % (html.escape(node["kind"]), html.escape(node["kind"]), node["id"], node.get("visits", 0),
                  node.get("value", 0.0), node.get("prior", 1.0), reward_text,
                  " &#9733; chosen" if node.get("chosen") else ""))
    body = "<pre>%s</pre>" % html.escape(node["text"]) if node.get("text") else ""
    children = "".join(_node_html(child) for child in node.get("children", []))
    opened = " open" if node.get("chosen") or node["kind"] == "root" else ""
    return "<details class='%s' data-id='%d'%s><summary>%s</summary>%s%s</details>" % (
        " ".join(classes), node["id"], opened, summary, body, children)


def render_html(tree: dict) -> str:
    meta = tree.get("meta", {})
    title = "codegym search tree" + (" &ndash; %s" % html.escape(str(meta.get("problem_id"))) if meta else "")
    meta_text = html.escape(", ".join("%s=%s" % (k, v) for k, v in meta.items()))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title><style>%s</style>"
            "<script>%s</script></head><body><h1>%s</h1><p>%s</p>"
            "<p><button onclick='setAll(true)'>expand all</button><button onclick='setAll(false)'>collapse all</button>"
            "<button onclick='showChosen()'>show chosen path</button></p>%s</body></html>"
            % (title, _STYLE, _SCRIPT, title, meta_text, _node_html(tree["root"])))


def write_tree_html(tree_file: str | Path, out: str | Path | None = None) -> Path:
    tree_file = Path(tree_file)
    tree = json.loads(tree_file.read_text())
    if "root" not in tree:
        raise ValueError("%s is not a codegym tree (no root)" % tree_file)
    target = Path(out) if out else tree_file.with_suffix(".html")
    target.write_text(render_html(tree))
    return target
