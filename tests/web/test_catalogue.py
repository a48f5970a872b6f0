"""Every word of the UI goes through the catalogue, and the Chinese catalogue covers it."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir

from ferryman.web import i18n

WEB = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _messages() -> list[str]:
    found = []
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB),
        [("templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None},
    ):
        text = message[0] if isinstance(message, tuple) else message
        if text not in found:
            found.append(text)
    return found


def _said() -> list[str]:
    """Every message the services make with ``said`` (errors a person reads in the UI)."""
    found = []
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB.parent), [("**.py", "python")], keywords={"said": None}
    ):
        text = message[0] if isinstance(message, tuple) else message
        if text not in found:
            found.append(text)
    return found


def test_services_messages_made_with_said_are_in_the_chinese_catalogue_too():
    chinese = i18n.translations("zh_CN")
    messages = _said()
    assert len(messages) >= 15
    for message in messages:
        translated = chinese.gettext(message)
        assert translated != message, f"not translated: {message!r}"
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message)), (
            message
        )


# a refusal line's ``path: `` prefix (``environments/prod/webroot: …``, ``repo: …``): the
# project form places the line at that field by it (``web/forms.field_errors``)
FIELD_PREFIX = re.compile(r"^((?:environments|repo)[\w/%()]*): ")


def test_a_translated_refusal_line_keeps_its_field_path_so_the_form_can_place_it():
    chinese = i18n.translations("zh_CN")
    for message in _said():
        prefix = FIELD_PREFIX.match(message)
        if prefix:
            translated = chinese.gettext(message)
            assert translated.startswith(prefix.group(0)), (message, translated)


def test_every_message_of_the_ui_has_a_chinese_translation_with_the_same_placeholders():
    chinese = i18n.translations("zh_CN")
    messages = _messages()
    assert len(messages) > 250
    for message in messages:
        translated = chinese.gettext(message)
        assert translated != message, f"not translated: {message!r}"
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message)), (
            message
        )


def test_templates_hold_no_text_outside_the_catalogue():
    """Strip template syntax, tags (with their attributes), scripts and entities: what is
    left between tags must not contain words."""
    for template in sorted((WEB / "templates").glob("*.html")):
        text = template.read_text()
        text = re.sub(r"\{#.*?#\}", " ", text, flags=re.S)
        text = re.sub(r"\{%.*?%\}", " ", text, flags=re.S)
        text = re.sub(r"\{\{.*?\}\}", " ", text, flags=re.S)
        text = re.sub(r"<script.*?</script>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
        text = re.sub(r"&\w+;", " ", text)
        words = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", text)
        assert not words, f"{template.name}: hard-coded text {words[:5]}"


def test_the_browser_language_decides_before_sign_in():
    assert i18n.negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh_CN"
    assert i18n.negotiate("zh;q=0.9") == "zh_CN"
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("fr-FR, de;q=0.5") == "en"
    assert i18n.negotiate("") == "en"
    assert i18n.choose("", "zh_CN", "en") == "zh_CN"
    assert i18n.choose("en", "zh_CN", "zh-CN") == "en"


def test_every_audit_action_the_services_record_reads_as_words():
    """The audit page says an action in words: every action a service records has a verb
    (found by reading every ``record(s, actor, "action", …)`` call in the package)."""
    import ast

    from ferryman.web.audit_text import VERBS

    recorded = set()
    for path in WEB.parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 3:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            action = node.args[2]
            if name == "record" and isinstance(action, ast.Constant):
                recorded.add(str(action.value))
    assert len(recorded) > 40
    assert sorted(recorded - set(VERBS)) == []
