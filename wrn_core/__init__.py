"""WRN Lab core library: model, summary, data, training, run store, jobs and CLI."""
