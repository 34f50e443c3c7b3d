"Core: what every stage stands on: environment, storage, record I/O, model loading, tracking, jobs, the embedded default."
