"""Golden files of rsengine's behaviour, frozen before a refactor (see cases.py and make_goldens.py)."""
