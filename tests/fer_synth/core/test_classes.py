import pytest

from fer_synth.core import classes


def test_order_is_fer2013():
    assert classes.CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize(
    "alias,name",
    [
        ("anger", "angry"),
        ("Disgusted", "disgust"),
        ("fearful", "fear"),
        ("happiness", "happy"),
        ("sadness", "sad"),
        ("surprised", "surprise"),
        (" NEUTRAL ", "neutral"),
    ],
)
def test_aliases(alias, name):
    assert classes.resolve(alias) == name


def test_unknown_lists_valid_names():
    with pytest.raises(classes.UnknownClassError) as e:
        classes.resolve("contempt")
    for name in classes.CLASSES:
        assert name in str(e.value)


def test_resolve_many_keeps_fer_order_and_all():
    assert classes.resolve_many(["neutral,anger", "fear"]) == ["angry", "fear", "neutral"]
    assert classes.resolve_many(["all"]) == list(classes.CLASSES)
