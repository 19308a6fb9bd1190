import nasforge


def test_public_stage_functions_resolve_lazily():
    from nasforge.search.loop import run_search
    from nasforge.train import load_model

    assert nasforge.run_search is run_search
    assert nasforge.load_model is load_model
    assert set(nasforge.__all__) >= {"run_search", "run_train", "load_model", "run_demo",
                                     "describe_genotype", "load_dataset"}
    for name in nasforge.__all__:
        assert getattr(nasforge, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        nasforge.not_a_function  # noqa: B018
