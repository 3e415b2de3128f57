"""Video walls (`/wall`) and touch kiosks (`/kiosk`): unattended displays opened by a token.

Every answer re-checks the display token, so revoking one blanks its screens within seconds, and
nothing outside the token's district is ever read. Importing the package registers the
callbacks of the slots and the alerts.
"""
