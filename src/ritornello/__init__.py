"""Ritornello."""
