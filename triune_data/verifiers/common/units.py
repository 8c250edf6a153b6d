"""Units after a number, in one table: what answers and golds carry besides the value.

Geometry and physics golds come with units ("12cm²", "4πcm", "3小时", "12海里", "5 m/s"), and
models write them in their own way (``12\\text{ cm}^2``, "12 cm^{2}", "12平方米"). math-verify drops
some Latin units at the very end of an answer, but it reads ``12 cm^2`` as 12 with a stray ``^2``
(144) and gives up on most Chinese units. `strip_units` removes, wherever it follows a number (or
π, ``\\pi``, a closing brace or parenthesis), a unit of `UNITS`:

- written plainly, in a ``\\text{}``/``\\mathrm{}`` wrapper, or after ``square``/``sq``/``cubic``;
- with an exponent: ``²``, ``³``, ``^2``, ``^{2}`` (inside or after the wrapper);
- as a quotient of two units: ``km/h``, ``m/s^2``, ``千米/小时``, ``千米每小时``;
- Chinese units with ``平方``/``立方`` (square, cubic) in front.

Latin units are removed only where the expression ends there (end of text, punctuation, a closing
bracket, ``$``, ``<``), so a variable is not mistaken for one: "2m + 3" keeps its m, "12 m" and
"12 m." lose theirs. Chinese units cannot be variables and are removed wherever they follow a
number. 度 (degrees) becomes ``°``, which math-verify reads as degrees; every other unit goes.

>>> strip_units("12cm²"), strip_units("12 \\\\text{cm}^{2}"), strip_units("4πcm"), strip_units("12海里")
('12', '12', '4π', '12')
>>> strip_units("60度"), strip_units("2m + 3"), strip_units("x^2 + 12")
('60°', '2m + 3', 'x^2 + 12')
"""

from __future__ import annotations

import re

# The table. Plurals are listed where models write them; longer spellings win over their prefixes.
UNITS: dict[str, tuple[str, ...]] = {
    "length": (
        *("km", "m", "dm", "cm", "mm", "μm", "µm", "um", "nm", "mi", "ft", "yd", "in"),
        *("meter", "meters", "metre", "metres", "kilometer", "kilometers", "kilometre", "kilometres"),
        *("centimeter", "centimeters", "centimetre", "centimetres", "millimeter", "millimeters"),
        *("mile", "miles", "foot", "feet", "yard", "yards", "inch", "inches"),
    ),
    "area": ("ha", "hectare", "hectares", "acre", "acres"),
    "volume": ("L", "l", "mL", "ml", "cc", "liter", "liters", "litre", "litres", "gallon", "gallons"),
    "mass": (
        *("kg", "g", "mg", "t", "lb", "lbs", "oz"),
        *("gram", "grams", "kilogram", "kilograms", "ton", "tons", "tonne", "tonnes", "pound", "pounds"),
    ),
    "time": (
        *("s", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes"),
        *("h", "hr", "hrs", "hour", "hours", "day", "days", "week", "weeks", "year", "years"),
    ),
    "speed": ("mph", "kmph", "kph"),
    "angle and temperature": ("deg", "degree", "degrees", "°C", "°F", "K"),
    "physics": ("N", "J", "kJ", "W", "kW", "V", "Pa", "kPa", "Hz", "mol", "Ω"),
    "money": ("dollar", "dollars", "cent", "cents", "yuan"),
    # Chinese (GeoQA, K12 and Chinese exam golds)
    "长度": (
        "千米",
        "公里",
        "米",
        "分米",
        "厘米",
        "毫米",
        "微米",
        "纳米",
        "海里",
        "英里",
        "英尺",
        "英寸",
        "里",
    ),
    "面积": ("公顷", "亩"),
    "体积": ("升", "毫升"),
    "质量": ("吨", "千克", "公斤", "克", "毫克", "斤"),
    "时间": ("年", "个月", "月", "周", "星期", "天", "日", "小时", "时", "分钟", "分", "秒"),
    "角度": ("度",),
    "货币": ("元", "角"),
    "量词": (
        *("个", "只", "人", "名", "位", "岁", "次", "本", "辆", "张", "条", "块", "棵", "头", "件"),
        *("台", "瓶", "支", "页", "道", "朵", "把", "匹", "层", "排", "组", "套", "枚", "颗", "盒"),
        *("箱", "包", "袋", "杯", "碗", "双", "对", "份", "部", "座", "间", "户", "种", "场", "根"),
    ),
}


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_LATIN = _alternation([u for kind, us in UNITS.items() if kind.isascii() for u in us])
_CJK = _alternation([u for kind, us in UNITS.items() if not kind.isascii() for u in us])
_EXP = r"(?:[²³]|\^\s*(?:\{\s*[23]\s*\}|[23]))"
_WRAP = r"\\(?:text|textrm|mathrm|mbox|rm)\s*\{{\s*{unit}\s*\}}"  # \text{cm}, \mathrm{cm^2}


def _term(core: str, per: str) -> str:
    one = f"(?:{_WRAP.format(unit=f'{core}{_EXP}?')}|{core}){_EXP}?"
    return f"{one}(?:\\s*(?:{per})\\s*{one})?"


_LATIN_CORE = rf"(?:(?:square|sq\.?|cubic|cu\.?)\s+)?(?:{_LATIN})(?![A-Za-z])"
_CJK_CORE = rf"(?:平方|立方)?(?:{_CJK})"
# What a unit follows (kept): a digit, "}", ")", π or \pi; then spaces, which go with the unit. The
# pattern starts with a character class and looks ahead for a unit's first character, so the
# regex engine skips most of a long completion without trying the tables (3x faster on the bench's
# math completions than a lookbehind first).
_AFTER_NUMBER = (
    r"(?P<pre>[\d})πi])(?:(?<=[\d})π])|(?<=\\pi))(?:\s|\\[,;:! ]|~)*"
    r"(?=[A-Za-z°µμΩ\u4e00-\u9fff]|\\(?:text|textrm|mathrm|mbox|rm)\s*\{)"
)
_ENDS = r"(?=\s*(?:$|[,.;:!?)\]}$<]|\\[)\]]))"  # where an expression ends
_UNIT = re.compile(
    rf"{_AFTER_NUMBER}(?:(?P<latin>{_term(_LATIN_CORE, '/')}){_ENDS}|(?P<cjk>{_term(_CJK_CORE, '/|每')}))"
)


def _replace(m: re.Match[str]) -> str:
    return m.group("pre") + ("°" if m.group("cjk") == "度" else "")


def strip_units(text: str) -> str:
    """`text` without the units of `UNITS` that follow a number (see the module docstring)."""
    return _UNIT.sub(_replace, text)
