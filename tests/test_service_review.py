"""The review service's pages over a seeded warehouse (FastAPI's TestClient, no server process):
sign-in, sessions, CSRF, rate limits, roles per family, escalations, concurrent decisions, the
identity a decision carries, error pages, escaping, and that no secret reaches a page or a log."""

import logging
import threading

import pytest
from fastapi.testclient import TestClient

from orchestration_assets.core.dispatch import dispatch_candidates
from orchestration_assets.core.review import read_review_decisions
from orchestration_assets.inputs import whole_table
from orchestration_assets.service import accounts
from orchestration_assets.service.app import SESSION_COOKIE, create_app
from orchestration_assets.service.cli import main as service_cli
from orchestration_assets.service.settings import SECRET_FILE, ServiceSettings
from resources.audit import read_audit
from resources.warehouse import Warehouse
from tests.governance_fixtures import validations_meet
from tests.service_fixtures import PASSWORD, SECRET, clone, csrf_of, seeded_service, sign_in

ST, IT = "support_triage", "it_service_desk"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, families):
    return seeded_service(tmp_path_factory.mktemp("seeded"), {ST: families[ST], IT: families[IT]})


@pytest.fixture(scope="module")
def sessions(seeded, families):
    """A real session cookie per user, from signing in once through the form (argon2 is slow on purpose).

    It is valid on every copy of the seeded warehouse: same secret, same account state."""
    app = create_app(seeded[0], list(families.values()))
    out = {}
    for name in ("alice", "bob", "lena", "ivan", "root"):
        c = client_of(app)
        sign_in(c, name)
        out[name] = c.cookies.get(SESSION_COOKIE)
    return out


@pytest.fixture
def service(seeded, tmp_path, families):
    settings, routing = seeded
    return create_app(clone(settings, tmp_path), list(families.values())), routing


@pytest.fixture
def signed(sessions):
    """A client of ``app`` signed in as ``name``."""
    def make(app, name):
        c = client_of(app)
        c.cookies.set(SESSION_COOKIE, sessions[name])
        return c
    return make


def client_of(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def items(routing, decision: str) -> list[str]:
    return routing.loc[routing["decision"] == decision, "record_id"].tolist()


def item_path(family: str, rid: str) -> str:
    return f"/families/{family}/items/{rid}"


def post_decision(client, family, rid, **form):
    token = csrf_of(client.get(item_path(family, rid)).text)
    return client.post(item_path(family, rid), data={"csrf_token": token, **form}, follow_redirects=False)


def decisions(app, family=ST):
    return read_review_decisions(app.state.warehouse, family)


# ---- signing in ---------------------------------------------------------------------------------
def test_pages_need_a_signed_in_user_and_a_wrong_password_is_refused(service):
    app, routing = service
    c = client_of(app)
    rid = items(routing[ST], "human_review")[0]
    for path in ("/", f"/families/{ST}", item_path(ST, rid), "/admin/users"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    r = c.post(item_path(ST, rid), data={"action": "approve"}, follow_redirects=False)
    assert r.status_code in (401, 403)
    r = sign_in(c, "alice", "not the password", expect=401)
    assert "Wrong user name or password" in r.text
    assert sign_in(c, "nobody", PASSWORD, expect=401).text.count("Wrong user name or password") == 1
    assert c.get("/", follow_redirects=False).status_code == 303
    assert decisions(app).empty

    sign_in(c, "alice")
    home = c.get("/")
    assert home.status_code == 200 and ST in home.text and IT not in home.text  # only her families
    r = client_of(app).post("/login", data={"name": "alice", "password": PASSWORD,
                                            "csrf_token": csrf_of(c.get("/login").text)}, follow_redirects=False)
    assert r.status_code == 403  # another browser's token is not this one's


def test_the_session_cookie_is_signed_httponly_samesite_and_ends_at_sign_out_or_when_disabled(service, signed):
    app, _ = service
    c = client_of(app)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"name": "alice", "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "max-age=" in cookie.lower()
    stolen = c.cookies.get(SESSION_COOKIE)
    forged = client_of(app)
    forged.cookies.set(SESSION_COOKIE, stolen[:-4] + "AAAA")  # a tampered signature is no session
    assert forged.get("/", follow_redirects=False).status_code == 303

    r = c.post("/logout", data={"csrf_token": csrf_of(c.get("/").text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get(f"/families/{ST}", follow_redirects=False).status_code == 303
    replay = client_of(app)
    replay.cookies.set(SESSION_COOKIE, stolen)  # the cookie from before sign-out no longer works
    assert replay.get(f"/families/{ST}", follow_redirects=False).status_code == 303

    bob = signed(app, "bob")
    assert bob.get(f"/families/{ST}", follow_redirects=False).status_code == 200
    accounts.set_disabled(app.state.warehouse, "bob")  # `workflow-service user disable bob`
    assert bob.get(f"/families/{ST}", follow_redirects=False).status_code == 303


def test_sign_in_attempts_are_limited_per_name_and_per_address(seeded, tmp_path, families):
    settings = clone(seeded[0], tmp_path).model_copy(update={"login_limit_per_user": "3/minute",
                                                             "login_limit_per_client": "5/minute"})
    app = create_app(settings, list(families.values()))
    c = client_of(app)
    for _ in range(3):
        sign_in(c, "alice", "wrong password!", expect=401)
    r = sign_in(c, "alice", PASSWORD, expect=429)  # even the right password waits
    assert "Too many sign-in attempts" in r.text and int(r.headers["retry-after"]) >= 1
    assert "Traceback" not in r.text
    sign_in(c, "bob", "wrong password!", expect=401)
    r = sign_in(c, "bob", PASSWORD, expect=429)  # the address's budget is spent, whatever the name
    assert "Too many sign-in attempts" in r.text


# ---- CSRF ---------------------------------------------------------------------------------------
def test_a_form_post_without_the_sessions_csrf_token_is_refused(service, signed):
    app, routing = service
    r = client_of(app).post("/login", data={"name": "alice", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "This form has expired" in r.text
    c = signed(app, "alice")
    rid = items(routing[ST], "human_review")[0]
    for data in ({"action": "approve"}, {"action": "approve", "csrf_token": "forged"}):
        r = c.post(item_path(ST, rid), data=data, follow_redirects=False)
        assert r.status_code == 403
    assert c.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert c.get("/").status_code == 200  # still signed in: the forged sign-out did nothing
    assert decisions(app).empty


# ---- roles --------------------------------------------------------------------------------------
def test_a_reviewer_without_the_familys_role_can_neither_see_nor_decide_its_items(service, signed):
    app, routing = service
    c = signed(app, "alice")
    rid = items(routing[IT], "human_review")[0]
    assert c.get(f"/families/{IT}").status_code == 404
    assert c.get(item_path(IT, rid)).status_code == 404
    token = csrf_of(c.get("/").text)
    r = c.post(item_path(IT, rid), data={"csrf_token": token, "action": "approve"}, follow_redirects=False)
    assert r.status_code == 404
    assert c.get("/admin/users").status_code == 403  # accounts need the admin role
    assert decisions(app, IT).empty

    ivan = signed(app, "ivan")
    assert ivan.get(f"/families/{IT}").status_code == 200 and ivan.get(f"/families/{ST}").status_code == 404


def test_escalations_are_for_leads_a_reviewer_neither_sees_nor_decides_them(service, signed):
    app, routing = service
    esc = items(routing[ST], "escalate")[0]
    alice = signed(app, "alice")
    queue = alice.get(f"/families/{ST}").text
    assert esc not in queue and items(routing[ST], "human_review")[0] in queue
    assert alice.get(item_path(ST, esc)).status_code == 403
    token = csrf_of(queue)
    r = alice.post(item_path(ST, esc), data={"csrf_token": token, "action": "reject"}, follow_redirects=False)
    assert r.status_code == 403 and decisions(app).empty

    lena = signed(app, "lena")
    assert esc in lena.get(f"/families/{ST}").text
    assert post_decision(lena, ST, esc, action="reject").status_code == 303
    assert decisions(app)[["record_id", "reviewer"]].values.tolist() == [[esc, "lena"]]
    assert esc in lena.get(f"/families/{ST}").text and esc not in alice.get(f"/families/{ST}").text  # decided list


def test_an_admin_sees_accounts_and_roles_but_no_password_hash(service, signed):
    app, _ = service
    c = signed(app, "root")
    page = c.get("/admin/users")
    assert page.status_code == 200
    assert all(name in page.text for name in ("alice", "bob", "lena", "ivan"))
    assert f"{IT}: lead" in page.text and "$argon2" not in page.text


# ---- deciding -----------------------------------------------------------------------------------
def test_a_decision_carries_the_signed_in_identity_leaves_the_queue_and_opens_the_next(service, signed):
    app, routing = service
    c = signed(app, "alice")
    first, second = items(routing[ST], "human_review")[:2]
    label = app.state.families[ST].tasks["category"].labels[-1]
    # a forged reviewer field is ignored: the decision is the signed-in user's
    r = post_decision(c, ST, first, action="relabel", corrected_label=label, reviewer="mallory",
                      edited_text="ignored for a relabel")
    assert r.status_code == 303 and r.headers["location"] == item_path(ST, second)
    page = c.get(r.headers["location"]).text
    assert f"Recorded relabel on {first}" in page and second in page
    assert first not in c.get(f"/families/{ST}").text.split("Decided recently")[0]
    stored = decisions(app)
    assert stored[["record_id", "decision", "reviewer", "channel", "corrected_label"]].values.tolist() == [
        [first, "relabel", "alice", "web", label]]
    audit = read_audit(app.state.warehouse, family=ST, event_type="review_decision")
    assert audit["actor"].tolist() == ["alice"] and audit["record_id"].tolist() == [first]

    r = post_decision(c, ST, second, action="edit_and_approve", edited_text="")
    assert r.status_code == 400 and "edit_and_approve needs edited_text" in r.text  # the same checks as the CLI
    r = post_decision(c, ST, second, action="edit_and_approve", edited_text="Your access is back; sign in again.")
    assert r.status_code == 303
    decided = c.get(item_path(ST, second)).text
    assert "is decided" in decided and "waiting for dispatch" in decided  # no dispatch has run yet


def test_two_reviewers_deciding_one_item_at_once_one_wins_the_other_is_told_and_it_dispatches_once(
        service, signed, monkeypatch):
    app, routing = service
    rid = items(routing[ST], "human_review")[0]
    clients = {name: signed(app, name) for name in ("alice", "bob")}
    forms = {}
    for name, c in clients.items():
        forms[name] = csrf_of(c.get(item_path(ST, rid)).text)
    validations_meet(monkeypatch)  # both requests pass validation before either writes
    answers = {}

    def decide(name, action):
        answers[name] = clients[name].post(item_path(ST, rid), data={"csrf_token": forms[name], "action": action},
                                           follow_redirects=False)

    threads = [threading.Thread(target=decide, args=a) for a in (("alice", "approve"), ("bob", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [303, 409], codes
    loser = next(n for n, r in answers.items() if r.status_code == 409)
    winner = ({"alice", "bob"} - {loser}).pop()
    assert "Someone else decided this item first" in answers[loser].text and winner in answers[loser].text
    stored = decisions(app)
    assert stored["reviewer"].tolist() == [winner]
    wh, family = app.state.warehouse, app.state.families[ST]
    cands = dispatch_candidates(family, whole_table(wh, family, "routing_decisions"),
                                whole_table(wh, family, "enriched_records"), stored)
    assert cands["record_id"].tolist().count(rid) == (1 if winner == "alice" else 0)


# ---- pages never leak -----------------------------------------------------------------------------
def test_record_text_is_escaped_on_every_page(service, signed):
    app, routing = service
    wh, family = app.state.warehouse, app.state.families[ST]
    rid = items(routing[ST], "human_review")[0]
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    body = family.record.text[-1]
    enriched = wh.read_table(family.table("enriched_records"))
    enriched.loc[enriched["record_id"] == rid, body] = hostile
    wh.replace_table(family.table("enriched_records"), enriched)
    c = signed(app, "alice")
    for page in (c.get(f"/families/{ST}").text, c.get(item_path(ST, rid)).text):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert" in page


def test_error_pages_are_rendered_without_a_traceback(service, signed, caplog):
    app, routing = service
    c = signed(app, "alice")
    missing = c.get("/no/such/page")
    assert missing.status_code == 404 and "<h1>404" in missing.text
    assert c.get(item_path(ST, "no-such-record")).status_code == 404
    # a corrupt row in a warehouse table: the page fails, the user gets a plain page, the log the cause
    wh, family = app.state.warehouse, app.state.families[ST]
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f'UPDATE "{family.table("routing_decisions")}" SET reasons = \'{{not json\'')
    with caplog.at_level(logging.ERROR, logger="orchestration_assets.service"):
        broken = c.get(f"/families/{ST}")
    assert broken.status_code == 500 and "<h1>500" in broken.text
    for leak in ("Traceback", "KeyError", ".py", "sqlite:"):
        assert leak not in broken.text
    assert any("KeyError" in r.getMessage() or r.exc_info for r in caplog.records)


def test_no_password_hash_secret_or_session_cookie_reaches_a_page_or_a_log(service, signed, caplog):
    app, routing = service
    pages = []
    with caplog.at_level(logging.DEBUG):
        c = client_of(app)
        pages.append(sign_in(c, "alice", "wrong password!", expect=401).text)
        r = sign_in(c, "alice")
        cookie = c.cookies.get(SESSION_COOKIE)
        for path in ("/", f"/families/{ST}", item_path(ST, items(routing[ST], "human_review")[0]), "/no/such"):
            pages.append(c.get(path).text)
        pages.append(post_decision(c, ST, items(routing[ST], "human_review")[0], action="approve").text)
        admin = signed(app, "root")
        pages.append(admin.get("/admin/users").text)
    with app.state.warehouse.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(accounts.users_table.select().with_only_columns(
            accounts.users_table.c.password_hash))]
    assert hashes and all(h.startswith("$argon2") for h in hashes)  # stored hashed, never in clear
    logged = caplog.text
    for secret in (PASSWORD, "wrong password!", SECRET, cookie, *hashes):
        assert secret and secret not in logged, "a secret reached the log"
        assert all(secret not in page for page in pages), "a secret reached a page"
    assert r.headers.get("set-cookie", "").count(cookie) == 1  # only the Set-Cookie header carries it


# ---- the CLI and the settings ------------------------------------------------------------------------
def test_accounts_are_managed_from_the_cli_and_a_bad_role_names_the_choices(tmp_path, monkeypatch, capsys):
    import io

    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert service_cli(["--warehouse-url", url, "user", "add", "carol", "--role", f"{ST}:lead",
                        "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert service_cli(["--warehouse-url", url, "user", "add", "dave", "--role", "nowhere:reviewer",
                        "--password-stdin"]) == 2
    err = capsys.readouterr().err
    assert "no family named 'nowhere'" in err and ST in err
    assert service_cli(["--warehouse-url", url, "user", "disable", "carol"]) == 0
    assert service_cli(["--warehouse-url", url, "user", "list"]) == 0
    out = capsys.readouterr().out
    assert f"carol\tdisabled\t{ST}:lead" in out and "$argon2" not in out
    wh = Warehouse(url=url)
    assert accounts.authenticate(wh, "carol", "a long enough password") is None  # disabled
    assert service_cli(["--warehouse-url", url, "user", "enable", "carol"]) == 0
    assert accounts.authenticate(wh, "carol", "a long enough password").role_in(ST) == "lead"


def test_a_generated_session_secret_is_private_stable_and_never_shown(data_dir, monkeypatch):
    monkeypatch.delenv("SERVICE_SECRET_KEY", raising=False)
    first, second = ServiceSettings(), ServiceSettings()
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32 and second.secret_key.get_secret_value() == key
    assert (data_dir / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert key not in repr(first) and key not in str(first.model_dump())
