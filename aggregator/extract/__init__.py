"""Heuristics that read meaning out of free text and markup: dates, structured data, listings.

Everything here is pure: text in, typed values out, no I/O and no clock
(the reference time is passed in).
"""
