"""The log models for ``python -m tests.django_suite``.

Not imported from here: the command copies this folder into the extracted
Django ``tests/`` folder and names it as a test label, so Django's
``runtests.py`` installs it next to the test modules it runs (it builds
``INSTALLED_APPS`` itself, from the labels). It has no migrations: runtests
creates the tables of test apps without migrations directly.
"""
