"""One-shot architecture search (``strategy=enas``, ``strategy=spos``): the space compiled to one
weight-sharing supernet, trained once, its candidates scored on the shared weights.

    supernet.py   the supernet: every option's weights by place and shape, a path built on them
    paths.py      trial stand-ins that draw a path: uniform, pinned, the controller's
    training.py   the LightningModule around the supernet and who picks each batch's path
    phases.py     training the supernet (resumable) and scoring the candidates on it
    runner.py     the command: the study, the phases, retraining the best standalone
    results.py    best.yaml, best.json, trials.csv with the standalone accuracies, the figures
"""
