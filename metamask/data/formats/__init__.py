"""File formats and readers that the loaders share; none of them registers a dataset.

Readers of data files (CSV rows by line offset, UEA/UCR ``.ts``, FASTA and KEEL text, DABS
pickles without pandas, audio files), the transforms that turn what they read into model inputs
(the DABS log-mel speech image, the WM-811K wafer image, token vocabularies), and eSpeak NG
speech synthesis (``espeak.py`` also runs as a script by path, in a child process). Heavy
third-party imports (soundfile, scipy, PIL) stay inside the functions that need them where the
module would otherwise pull them in at import.
"""
