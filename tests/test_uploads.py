import pytest

from assistant.chat.uploads import UploadError, safe_name, save_upload


def test_names_are_sanitized():
    assert safe_name("../../etc/pass wd.PDF") == "pass_wd.pdf"
    assert safe_name("C:\\docs\\guide (2024).pdf") == "guide_2024.pdf"


def test_non_pdfs_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(UploadError, match="not a PDF"):
        save_upload("notes.txt", b"hello", tmp_path)
    with pytest.raises(UploadError, match="content is not a PDF"):
        save_upload("fake.pdf", b"MZ\x90\x00 binary", tmp_path)
    with pytest.raises(UploadError, match="limit is 1 MiB"):
        save_upload("big.pdf", b"%PDF-1.4" + b"0" * 2**21, tmp_path, max_bytes=2**20)
    assert list(tmp_path.iterdir()) == []
    assert save_upload("ok.pdf", b"%PDF-1.4\n%%EOF", tmp_path).read_bytes().startswith(b"%PDF")
