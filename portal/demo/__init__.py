"""The demo: a synthetic department (:mod:`.synthetic`), ``seed_demo`` to load it and ``run_demo`` to
run the whole portal on one machine. It sits on top: it may use every app, and no app uses it."""
