"""The daily report's PNG chart is drawn by `core.chart`, shared with the performance export."""

from core.chart import line_chart_png as line_chart_png
from core.chart import png_encode as png_encode
