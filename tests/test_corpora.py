import shutil

import pytest

from corpora import CorpusError, list_corpora, load_corpus, resolve_corpus

SPECIALTIES = ["cardiology", "diabetes", "mental_health", "pregnancy"]


def test_manifests_list_the_four_specialties():
    assert list_corpora() == SPECIALTIES
    assert load_corpus("pregnancy").pages == 636
    with pytest.raises(CorpusError, match="manifests exist for: cardiology, diabetes"):
        load_corpus("dermatology")


@pytest.mark.parametrize("name", SPECIALTIES)
def test_manifest_resolves_against_real_data(name, data_dir):
    paths = resolve_corpus(name, data_dir, download=False)
    assert [p.name for p in paths] == [f.file for f in load_corpus(name).files]


def test_wrong_sha256_and_missing_file_are_named(tmp_path, data_dir):
    corpus = load_corpus("diabetes")
    folder = tmp_path / "corpora" / "diabetes"
    folder.mkdir(parents=True)
    first, second = corpus.files
    shutil.copy(data_dir / "corpora" / "diabetes" / first.file, folder / first.file)
    (folder / second.file).write_bytes(b"%PDF-1.4 not the real file")
    with pytest.raises(CorpusError) as err:
        resolve_corpus("diabetes", tmp_path, download=False)
    assert f"{second.file}: found sha256" in str(err.value) and second.sha256 in str(err.value)
    (folder / second.file).unlink()
    with pytest.raises(CorpusError) as err:
        resolve_corpus("diabetes", tmp_path, download=False)
    assert (
        "missing from" in str(err.value)
        and second.file in str(err.value)
        and "LLAMA_MD_DATA_DIR" in str(err.value)
    )


def test_unset_data_dir_says_which_setting():
    with pytest.raises(CorpusError, match="LLAMA_MD_DATA_DIR"):
        resolve_corpus("pregnancy", None)
