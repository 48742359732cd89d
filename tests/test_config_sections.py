"""Channel sections come from their adapters: ``[accounts.NAME]`` is read by the channel that
registers ``NAME`` under the ``seqengine.account_sections`` entry point group.

A third-party channel is installed here as a real distribution (a ``.dist-info`` folder with
``entry_points.txt`` on ``sys.path``), so the workspace loader finds it exactly as it finds the
built-in ones, and no runtime file names it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import seqengine_email
import seqengine_linkedin
import seqengine_x
from seqengine import ConfigError, MailboxKind
from seqengine.runtime import ChannelConfig, ConfigTable, Secret, load_workspace
from seqengine_linkedin import LinkedInAccount

SEQ = """\
[sequence]
id = "x-like"

[[steps]]
id = "like"
action = "like"
platform = "x"
"""

#: A third-party SMS channel's config module, as its package would ship it.
SMS_MODULE = """\
from __future__ import annotations

from typing import Any, ClassVar, Self

import attrs

from seqengine import Account
from seqengine.runtime import ChannelConfig, ConfigTable, Secret


@attrs.frozen
class SmsConfig(ChannelConfig):
    workspace_table: ClassVar[bool] = True
    example: ClassVar[str] = 'number = "+4915112345678"'

    number: str
    api_key: Secret
    sender: str

    @classmethod
    def workspace_defaults(cls, table: ConfigTable | None) -> Any:
        if table is None:
            return "Outreach"
        table.only(("sender",))
        return table.string("sender", example='"Acme"')

    @classmethod
    def from_table(cls, table: ConfigTable) -> Self:
        table.only(("api_key", "number", "sender"))
        number = table.string("number", example='"+4915112345678"')
        if not number.startswith("+"):
            raise table.fail("number", f"must start with + and the country code, got {number!r}")
        return cls(
            number=number,
            api_key=table.secret("api_key"),
            sender=table.optional("sender", table.defaults),
        )

    def configure(self, account: Account) -> Account:
        return attrs.evolve(account, timezone="Europe/Berlin")


class NotAConfig:
    pass
"""


def install_channel(site: Path, entries: str) -> None:
    """A distribution ``sms-channel`` in ``site`` with ``sms_channel.py`` and ``entries``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "sms_channel.py").write_text(SMS_MODULE, encoding="utf-8")
    info = site / "sms_channel-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sms-channel\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[seqengine.account_sections]\n{entries}\n", encoding="utf-8"
    )


@pytest.fixture
def sms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    install_channel(site, "sms = sms_channel:SmsConfig\nbroken = sms_channel:NotAConfig")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "sms_channel", raising=False)
    return tmp_path


def workspace(folder: Path, body: str) -> Path:
    (folder / "seq.toml").write_text(SEQ, encoding="utf-8")
    path = folder / "workspace.toml"
    path.write_text(f'sequences = ["seq.toml"]\n\n{body}', encoding="utf-8")
    return path


def failure(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_workspace(str(path))
    return str(info.value)


# -- a third-party channel ---------------------------------------------------------------------


def test_a_third_party_channel_reads_its_own_section_through_the_entry_point(sms: Path) -> None:
    ws = load_workspace(
        str(
            workspace(
                sms,
                '[sms]\nsender = "Acme"\n\n'
                '[[accounts]]\nid = "acc-1"\n\n'
                '[accounts.sms]\nnumber = "+4915112345678"\napi_key = "env:SMS_KEY"\n\n'
                '[[accounts]]\nid = "acc-2"\n\n'
                '[accounts.sms]\nnumber = "+4915100000000"\napi_key = "k"\nsender = "Bo"\n',
            )
        )
    )
    sms_config = sys.modules["sms_channel"].SmsConfig
    first, second = ws.accounts
    one = first.channel("sms", sms_config)
    assert one is not None and isinstance(one, ChannelConfig)
    assert (one.number, one.api_key, one.sender) == (
        "+4915112345678",
        Secret(env="SMS_KEY", field="x"),
        "Acme",  # the workspace's [sms] table
    )
    two = second.channel("sms", sms_config)
    assert two is not None and two.sender == "Bo"  # the account's own key wins
    assert ws.channel_defaults["sms"] == "Acme"
    assert first.account.timezone == "Europe/Berlin"  # configure() told the engine's Account
    assert first.channel("x", seqengine_x.XConfig) is None


def test_a_third_party_section_fails_with_the_file_and_key_path(sms: Path) -> None:
    bad_number = workspace(
        sms, '[[accounts]]\nid = "acc-1"\n\n[accounts.sms]\nnumber = "0151"\napi_key = "k"\n'
    )
    assert failure(bad_number) == (
        f"{bad_number}: accounts[0].sms.number must start with + and the country code, got '0151'"
    )
    unknown = workspace(
        sms, '[[accounts]]\nid = "acc-1"\n\n[accounts.sms]\nnumbr = "+49"\napi_key = "k"\n'
    )
    assert failure(unknown).endswith(
        "accounts[0].sms: unknown key 'numbr'; allowed: api_key, number, sender"
        " — did you mean 'number'?"
    )
    missing = workspace(sms, '[[accounts]]\nid = "acc-1"\n\n[accounts.sms]\nnumber = "+49"\n')
    assert failure(missing).endswith(
        'accounts[0].sms.api_key is required, e.g. api_key = "env:API_KEY"'
    )
    not_a_table = workspace(sms, '[[accounts]]\nid = "acc-1"\nsms = "+49"\n')
    assert failure(not_a_table).endswith(
        'accounts[0].sms must be a table ([accounts.sms] number = "+4915112345678"), got a string'
    )
    top = workspace(sms, '[sms]\nsendr = "A"\n\n[[accounts]]\nid = "acc-1"\n')
    assert failure(top).endswith(
        "sms: unknown key 'sendr'; allowed: sender — did you mean 'sender'?"
    )


def test_the_installed_sections_are_the_keys_an_account_and_the_workspace_allow(sms: Path) -> None:
    account_typo = workspace(sms, '[[accounts]]\nid = "acc-1"\n\n[accounts.smss]\nnumber = "+4"\n')
    message = failure(account_typo)
    assert "accounts[0]: unknown key 'smss'; allowed: " in message
    allowed = message.split("allowed: ")[1].split(" — ")[0].split(", ")
    assert {"broken", "email", "linkedin", "sms", "x"} <= set(allowed)
    assert message.endswith("did you mean 'sms'?")
    top_typo = workspace(sms, '[smss]\nsender = "A"\n\n[[accounts]]\nid = "acc-1"\n')
    # Top level: the runtime's tables and the channels that have a workspace table.
    assert failure(top_typo).endswith(
        "unknown key 'smss'; allowed: accounts, ai, email, leads, notifications, sequences, sms, "
        "storage, timezone_default, worker — did you mean 'sms'?"
    )


def test_an_entry_point_that_is_not_a_channel_config_is_named(sms: Path) -> None:
    path = workspace(sms, '[[accounts]]\nid = "acc-1"\n\n[accounts.broken]\nkey = 1\n')
    assert failure(path) == (
        f"{path}: accounts[0].broken: the 'broken' channel's entry point "
        "(sms_channel:NotAConfig) is not a seqengine.runtime.ChannelConfig subclass"
    )


def test_a_channel_without_a_workspace_table_is_not_a_top_level_key(tmp_path: Path) -> None:
    path = workspace(tmp_path, '[x]\nuser_id = "1"\n\n[[accounts]]\nid = "acc-1"\n')
    assert failure(path) == (
        f"{path}: unknown key 'x'; allowed: accounts, ai, email, leads, notifications, "
        "sequences, storage, timezone_default, worker"
    )


def test_without_the_third_party_package_its_section_is_an_unknown_key(tmp_path: Path) -> None:
    path = workspace(tmp_path, '[[accounts]]\nid = "acc-1"\n\n[accounts.sms]\nnumber = "+4"\n')
    assert "accounts[0]: unknown key 'sms'; allowed: connection_request_daily_limit, email" in (
        failure(path)
    )


# -- the built-in channels own their sections --------------------------------------------------


def test_builtin_sections_are_the_adapters_classes(tmp_path: Path) -> None:
    path = workspace(
        tmp_path,
        '[[accounts]]\nid = "acc-1"\n\n'
        '[accounts.x]\nuser_id = 42\naccess_token = "env:X"\n\n'
        '[accounts.linkedin]\nli_at = "env:LI_AT"\njsessionid = "env:LI_J"\n\n'
        '[accounts.email.smtp]\naddress = "me@acme.test"\nhost = "smtp.acme.test"\n',
    )
    acc = load_workspace(str(path)).accounts[0]
    x = acc.channel("x", seqengine_x.XConfig)
    linkedin = acc.channel("linkedin", seqengine_linkedin.LinkedInConfig)
    email = acc.channel("email", seqengine_email.EmailConfig)
    assert x is not None and x.user_id == "42" and acc.account.x_user_id == "42"
    assert linkedin is not None and linkedin.api == "voyager"
    assert email is not None and email.smtp is not None
    assert acc.account.primary_mailbox is MailboxKind.SMTP
    assert (acc.x, acc.linkedin, acc.email) == (x, linkedin, email)  # the shorthands
    with pytest.raises(ConfigError, match=r"\[accounts.x\] was read by XConfig, not EmailConfig"):
        acc.channel("x", seqengine_email.EmailConfig)


def test_moved_names_stay_importable_from_the_runtime() -> None:
    import seqengine.runtime as runtime
    from seqengine.runtime import _config

    assert runtime.XConfig is seqengine_x.XConfig
    assert runtime.LinkedInConfig is seqengine_linkedin.LinkedInConfig
    assert runtime.SmtpConfig is seqengine_email.SmtpConfig
    assert _config.EmailSettings is seqengine_email.EmailSettings
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = runtime.Nope


def test_linkedin_account_reads_the_typed_config_only() -> None:
    table = ConfigTable(
        "workspace.toml",
        "accounts[0].linkedin",
        {"li_at": "a", "jsessionid": "b", "linkedin_version": "202501"},
    )
    config = seqengine_linkedin.LinkedInConfig.from_table(table)
    account = LinkedInAccount.from_config(config, account_id="acc-1")
    assert account.linkedin_version == "202501"
    assert account.rest_base_url == seqengine_linkedin.DEFAULT_REST_URL  # unset: the default

    class LooksAlike:
        li_at = "a"
        jsessionid = "b"

    with pytest.raises(ConfigError, match="must be a LinkedInAccount or a LinkedInConfig"):
        LinkedInAccount.from_config(LooksAlike(), account_id="acc-1")  # type: ignore[arg-type]


# -- a channel whose extra is not installed ----------------------------------------------------

BLOCKED = """\
import sys
from importlib.abc import MetaPathFinder


class NoHttpx(MetaPathFinder):
    # As if seqengine was installed without the extra: httpx cannot be imported.
    def find_spec(self, name, path=None, target=None):
        if name == "httpx" or name.startswith("httpx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoHttpx())

from seqengine import ConfigError
from seqengine.runtime import load_workspace

try:
    load_workspace(sys.argv[1])
except ConfigError as exc:
    print(exc)
else:
    print("loaded")
"""


@pytest.mark.parametrize(
    ("section", "body"),
    [
        ("x", '[accounts.x]\nuser_id = "1"\naccess_token = "t"\n'),
        ("linkedin", '[accounts.linkedin]\nli_at = "a"\njsessionid = "b"\n'),
        ("email", '[accounts.email.smtp]\naddress = "a@b.test"\nhost = "h"\n'),
    ],
    ids=["x", "linkedin", "email"],
)
def test_a_channel_whose_extra_is_missing_names_the_file_key_and_extra(
    tmp_path: Path, section: str, body: str
) -> None:
    path = workspace(tmp_path, f'[[accounts]]\nid = "acc-1"\n\n{body}')
    script = tmp_path / "load.py"
    script.write_text(BLOCKED, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == (
        f"{path}: accounts[0].{section} needs the {section!r} channel (from seqengine), which "
        f"needs a package that is not installed (httpx); install it with: pip install "
        f'"seqengine[{section}]"'
    ), done.stderr
    # Without the section, the same workspace loads: only the channels it uses are imported.
    path.write_text('sequences = ["seq.toml"]\n[[accounts]]\nid = "a"\n', encoding="utf-8")
    again = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert again.stdout.strip() == "loaded", again.stderr
