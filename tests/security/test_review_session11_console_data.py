"""Review, session 11 (proposed fix in src/ferryman/web/render.py, not committed: that file
is being edited): the console page embeds its deploy as JSON in ``<script
type="application/json" id="deploy-data">``, escaping only ``</``. Hook output is hostile
input, and a deploy's error carries it: ``<!--<script>`` inside a script element puts the
HTML parser in its "double escaped" state, where the element's own ``</script>`` no longer
ends it — the rest of the page, the console's script among it, becomes JSON text, and the
console of that deploy stops working for everyone who opens it. JSON embedded in a page
should carry no ``<`` at all (``\\u003c``)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import update

from ferryman.db.models import Deploy
from ferryman.services import deploys
from tests.api.world import SPACE, World, build_world
from tests.web.test_pages import browser

HOSTILE = "npm ERR! <!--<script>x</script> and <SCRIPT> again"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("console-data"))


def test_hook_output_in_a_deploys_error_cannot_unbalance_the_consoles_data_element(world):
    deploy_id = world.queued_deploy()
    with world.db.transaction() as s:  # as a worker would have: it ran, a hook failed
        s.execute(update(Deploy).where(Deploy.id == deploy_id).values(status="running"))
    deploys.finish(world.db, deploy_id, "failed", {"code": "task_failed", "message": HOSTILE})
    page = browser(world, "reporter").get(f"/s/{SPACE}/deploys/{deploy_id}")
    assert page.status_code == 200
    found = re.search(
        r'<script type="application/json" id="deploy-data">(.*?)</script>', page.text, re.S
    )
    assert found is not None
    data = found.group(1)
    assert "<!--" not in data and "<script" not in data.lower(), data[:300]
    assert HOSTILE in json.dumps(json.loads(data), ensure_ascii=False)  # the text is all there
