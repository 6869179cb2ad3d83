"""The page template of the course site: nbconvert's ``lab`` template, offline.

Introduced with the course site (issue 16). It extends nbconvert's own
``lab/index.html.j2`` and replaces the three blocks that would reach the
network: require.js, the ipywidgets manager and MathJax (all from a CDN by
default). MathJax 2.7 is served from the site itself (``_static/mathjax``,
copied from the ``jupyter-server-mathjax`` package); widgets are shown as
the static picture stored with their output (see ``build.py``).
"""

from __future__ import annotations

TEMPLATE_NAME = "recattn_site.html.j2"

# ``resources.recattn`` is filled per page by build.py: root (relative path
# to the site root, "" or "../"), nav (HTML of the bar) and title.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}

{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}

{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [['$', '$'], ['\\(', '\\)']],
            displayMath: [['$$', '$$'], ['\\[', '\\]']],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], webFont: "STIX-Web", imageFont: null,
               preferredFont: null, linebreaks: {automatic: true}},
  displayAlign: "center",
  messageStyle: "none"
});
</script>
<script src="{{ resources.recattn.root }}_static/mathjax/MathJax.js?config={{
  'TeX-AMS-MML_HTMLorMML-full,Safe' }}"></script>
{%- endblock html_head_js_mathjax -%}

{#- The lab template runs Pygments' output through bleach again: a third of the build
    time, for HTML that Pygments has already escaped. -#}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}

{%- block html_head_css -%}
<link rel="stylesheet" href="{{ resources.recattn.root }}_static/recattn.css">
{%- endblock html_head_css -%}

{%- block body_header -%}
{{ super() }}
<nav class="recattn-nav">{{ resources.recattn.nav }}</nav>
{%- endblock body_header -%}

{% block body_footer %}
<nav class="recattn-nav recattn-nav-bottom">{{ resources.recattn.nav }}</nav>
{{ super() }}
{% endblock body_footer %}
"""

CSS = """\
body.jp-Notebook { max-width: 1100px; margin: 0 auto; padding: 0 1em 2em; }
.recattn-nav { font-family: var(--jp-ui-font-family, sans-serif); font-size: 14px;
  padding: 0.6em 0; margin-bottom: 1em; border-bottom: 1px solid #ddd;
  display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; }
.recattn-nav-bottom { border-bottom: none; border-top: 1px solid #ddd; margin-top: 2em; }
.recattn-nav a { text-decoration: none; }
.recattn-nav .recattn-home { font-weight: bold; }
.recattn-static-note { border-left: 4px solid #f0ad4e; background: #fff8e6;
  padding: 0.4em 0.8em; margin: 0.3em 0; font-family: var(--jp-ui-font-family, sans-serif); }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedMarkdown pre { background: #f5f5f5; padding: 0.5em 0.8em; border-radius: 3px; }
.jp-RenderedHTMLCommon a code { color: #0d47a1; border-bottom: 1px solid #90caf9; }
"""
