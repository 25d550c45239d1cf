"""Kubernetes objects in a Markdown file's fenced blocks, at the Markdown file's lines."""

from __future__ import annotations

import pytest

from netcc.diagnostics import SpecError
from netcc.sources.manifests import read_markdown
from netcc.sources.markdown import fenced_blocks

README = """\
# Deploying the shop

Install:

```sh
kubectl apply -f https://example.invalid/shop.yaml
```

The namespace:

```yaml
apiVersion: v1
kind: Namespace
metadata:
  name: shop
```

A fragment, not an object (ignored):

```yml
podSelector:
  matchLabels: {app: web}
```

1. Then the pods, in a list item:

   ```YAML title="pods"
   apiVersion: v1
   kind: Pod
   metadata:
     name: a
   ---
   apiVersion: v1
   kind: Pod
   metadata:
     name: b
   ```

An unlabelled block holding an object is read:

~~~
apiVersion: v1
kind: Service
metadata: {name: web}
~~~

An unlabelled block that is no object, and one that is not YAML, are not:

```
just: text
```

```
{{ .Values.image }}: [
```

````markdown
```yaml
apiVersion: v1
kind: Pod
metadata: {name: quoted}
```
````

```json
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "json"}}
```
"""


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_objects_of_yaml_blocks_at_markdown_lines() -> None:
    ms = read_markdown(README, "README.md")
    assert [(m.kind, m.name) for m in ms] == [
        ("Namespace", "shop"),
        ("Pod", "a"),
        ("Pod", "b"),
        ("Service", "web"),
    ]
    assert {m.file for m in ms} == {"README.md"}
    assert ms[0].locate("metadata.name") == (line_of(README, "name: shop"), 9)
    assert ms[1].locate("metadata.name") == (line_of(README, "name: a"), 12)
    assert ms[2].locate("metadata.name") == (line_of(README, "name: b"), 12)
    assert ms[2].locate("") == (line_of(README, "name: b") - 3, 4)  # the `---` moved, not its pod
    assert ms[3].locate("metadata.name") == (line_of(README, "{name: web}"), 18)


def test_a_labelled_block_that_does_not_parse_is_an_error() -> None:
    text = "# x\n\n```yaml\napiVersion: v1\nkind: Pod\nmetadata: {name: [p}\n```\n"
    with pytest.raises(SpecError) as info:
        read_markdown(text, "doc.md")
    (d,) = info.value.diagnostics
    assert d.message.startswith("YAML syntax error")
    assert (d.file, d.line) == ("doc.md", 6)


def test_duplicate_keys_in_a_block_are_errors_at_markdown_lines() -> None:
    text = "text\n```yml\nkind: Pod\napiVersion: v1\nkind: Service\n```\n"
    with pytest.raises(SpecError) as info:
        read_markdown(text.encode(), "doc.md")
    (d,) = info.value.diagnostics
    assert (d.message, d.line, d.col) == ('duplicate key "kind" (first defined on line 3)', 5, 1)


def test_crlf_tilde_fences_and_an_unclosed_block() -> None:
    text = "a\r\n~~~~yaml\r\napiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p\r\n~~~~\r\n"
    text += "```yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: open\n"
    ms = read_markdown(text, "doc.md")
    assert [(m.name, m.locate("metadata.name")) for m in ms] == [("p", (6, 9)), ("open", (12, 9))]


def test_no_blocks_no_objects() -> None:
    text = "# Title\n\nText with `inline` code and ``` in the middle.\n"
    assert read_markdown(text, "a.md") == []
    assert read_markdown("", "a.md") == []


def test_fences() -> None:
    lines = ["```yaml", "a", "````", "b", "  ~~~ yml extra", "c", "  ~~~", "``` a`b", ""]
    blocks = fenced_blocks(lines)
    assert [(b.lang, b.fence, b.lines) for b in blocks] == [
        ("yaml", 0, ("a",)),  # a longer fence closes the block
        ("yml", 4, ("c",)),  # a fence with a backtick in its info is none
    ]
