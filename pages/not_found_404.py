"""404 page."""

import dash
from dash import dcc, html

dash.register_page(__name__, path="/404", title="未找到 · Not found")

layout = html.Div(
    className="os-page",
    children=[
        html.H1("404"),
        html.P("页面不存在 / This page does not exist."),
        dcc.Link("返回全市总览 / Back to the city overview", href="/"),
    ],
)
