"""Who may ask and who may add: the users file (scrypt hashes, roles, atomic writes) and `rag user`."""

from __future__ import annotations

import io
import sys

import pytest

from rag import cli
from rag.errors import AccessError
from rag.users import UserFile, add_user, hash_password, read_users, remove_user, verify_password

READER = ("rita", "reader-Secret-41")
UPLOADER = ("uma", "uploader-Secret-42")
WRONG = "not-her-Password-43"


# ---- the users file ------------------------------------------------------------------------


def test_passwords_are_stored_as_salted_scrypt_hashes(tmp_path):
    encoded = hash_password("correct horse battery")
    algo, n, r, p, salt, digest = encoded.split("$")
    assert (algo, n, r, p) == ("scrypt", "16384", "8", "1")
    assert encoded != hash_password("correct horse battery")  # a fresh salt every time
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    weaker = hash_password("correct horse battery", n=2**10, r=4, p=2)
    assert weaker.startswith("scrypt$1024$4$2$") and verify_password("correct horse battery", weaker)
    with pytest.raises(AccessError, match="at least 8"):
        hash_password("short")


def test_user_add_remove_and_list_write_the_file_atomically_with_mode_0600(tmp_path, capsys, monkeypatch):
    users = tmp_path / "conf" / "users.txt"
    monkeypatch.delenv("RAG_AUTH_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(READER[1] + "\n"))
    assert cli.main(["user", "add", READER[0], "--password-stdin", "--auth-file", str(users)]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(UPLOADER[1] + "\n"))
    monkeypatch.setenv("RAG_AUTH_FILE", str(users))
    assert cli.main(["user", "add", UPLOADER[0], "--can-upload", "--password-stdin"]) == 0
    assert users.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in users.parent.iterdir()) == ["users.txt"]  # no temporary file left behind
    lines = [line for line in users.read_text().splitlines() if not line.startswith("#")]
    assert [line.split(":")[0::2] for line in lines] == [["rita", "ask"], ["uma", "upload"]]
    assert all(line.split(":")[1].startswith("scrypt$16384$8$1$") for line in lines)
    capsys.readouterr()
    assert cli.main(["user", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["rita\task", "uma\tupload"]

    assert cli.main(["user", "remove", "rita"]) == 0
    assert list(read_users(users)) == ["uma"]
    assert cli.main(["user", "remove", "rita"]) == 2
    assert "no user 'rita'" in capsys.readouterr().err
    assert cli.main(["user", "add", "no:colons", "--password-stdin"]) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal and no --password-stdin: refuse, never echo
    assert cli.main(["user", "add", "someone"]) == 2
    assert "--password-stdin" in capsys.readouterr().err
    monkeypatch.delenv("RAG_AUTH_FILE")
    assert cli.main(["user", "list"]) == 2
    assert "--auth-file" in capsys.readouterr().err


def test_a_broken_users_file_names_its_line_and_a_running_chat_sees_edits(tmp_path):
    users = tmp_path / "users.txt"
    add_user(users, *READER)
    running = UserFile(users)
    assert running.check(*READER) and not running.check(READER[0], WRONG) and not running.check("nobody", READER[1])
    assert not running.can_upload(READER[0])
    add_user(users, *UPLOADER, can_upload=True)  # `rag user add` while the chat runs
    assert running.check(*UPLOADER) and running.can_upload(UPLOADER[0])
    remove_user(users, UPLOADER[0])
    assert not running.check(*UPLOADER) and not running.can_upload(UPLOADER[0])

    users.write_text(users.read_text() + "mallory:plaintext-password:ask\n")
    with pytest.raises(AccessError, match=r"users.txt line 5: the password hash is not scrypt"):
        UserFile(users)
    with pytest.raises(AccessError):
        running.check(*READER)  # fails closed until the file is fixed
    (tmp_path / "empty.txt").write_text("# nobody yet\n")
    with pytest.raises(AccessError, match="has no users: add one with `rag user add"):
        UserFile(tmp_path / "empty.txt")
