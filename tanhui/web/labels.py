"""What people read for the platform's codes, shared by the templates and the charts built in Python."""

from __future__ import annotations

from tanhui.web import i18n
from tanhui.web.i18n import N_

SCENARIO_NAMES = {
    "metro": N_("Metro"),
    "bus": N_("Bus"),
    "bike_share": N_("Shared bike"),
    "walking": N_("Walking"),
    "ev_trip": N_("Electric car trip"),
    "ev_charging": N_("EV charging"),
    "ride_hailing": N_("Ride-hailing"),
    "carpool": N_("Carpool"),
    "electricity_saving": N_("Saving electricity"),
    "distributed_pv": N_("Rooftop PV"),
    "no_disposable_tableware": N_("No disposable tableware"),
    "second_hand_phone": N_("Second-hand phone"),
    "recycling": N_("Recycling"),
    "shopping_bag": N_("Own shopping bag"),
    "digital_refuelling": N_("Digital refuelling"),
}
# Partners and older pages write some codes with a hyphen.
SCENARIO_NAMES.update(
    {"bike-share": SCENARIO_NAMES["bike_share"], "ev-trip": N_("Electric car trip")}
)


def scenario_name(code: str, lang: str) -> str:
    """The scenario as people say it in `lang`; an unknown code as it is."""
    name = SCENARIO_NAMES.get(code)
    return i18n.translator(lang)(name) if name else code


# Regions as the factor tables and methodologies name them (lowercase pinyin): (Chinese, English).
REGION_NAMES = {
    "national": ("全国", "National"),
    "huabei": ("华北电网", "North China grid"),
    "dongbei": ("东北电网", "Northeast China grid"),
    "huadong": ("华东电网", "East China grid"),
    "huazhong": ("华中电网", "Central China grid"),
    "xibei": ("西北电网", "Northwest China grid"),
    "nanfang": ("南方电网", "China Southern grid"),
    "xinan": ("西南电网", "Southwest China grid"),
    "beijing": ("北京", "Beijing"),
    "tianjin": ("天津", "Tianjin"),
    "hebei": ("河北", "Hebei"),
    "shanxi": ("山西", "Shanxi"),
    "neimenggu": ("内蒙古", "Inner Mongolia"),
    "liaoning": ("辽宁", "Liaoning"),
    "jilin": ("吉林", "Jilin"),
    "heilongjiang": ("黑龙江", "Heilongjiang"),
    "shanghai": ("上海", "Shanghai"),
    "jiangsu": ("江苏", "Jiangsu"),
    "zhejiang": ("浙江", "Zhejiang"),
    "anhui": ("安徽", "Anhui"),
    "fujian": ("福建", "Fujian"),
    "jiangxi": ("江西", "Jiangxi"),
    "shandong": ("山东", "Shandong"),
    "henan": ("河南", "Henan"),
    "hubei": ("湖北", "Hubei"),
    "hunan": ("湖南", "Hunan"),
    "guangdong": ("广东", "Guangdong"),
    "guangxi": ("广西", "Guangxi"),
    "hainan": ("海南", "Hainan"),
    "chongqing": ("重庆", "Chongqing"),
    "sichuan": ("四川", "Sichuan"),
    "guizhou": ("贵州", "Guizhou"),
    "yunnan": ("云南", "Yunnan"),
    "xizang": ("西藏", "Xizang"),
    "shaanxi": ("陕西", "Shaanxi"),
    "gansu": ("甘肃", "Gansu"),
    "qinghai": ("青海", "Qinghai"),
    "ningxia": ("宁夏", "Ningxia"),
    "xinjiang": ("新疆", "Xinjiang"),
    "shenzhen": ("深圳", "Shenzhen"),
    "guangzhou": ("广州", "Guangzhou"),
    "wuhan": ("武汉", "Wuhan"),
    "suzhou": ("苏州", "Suzhou"),
    "chengdu": ("成都", "Chengdu"),
}


def region_name(code: str, lang: str) -> str:
    """The region as people write it in `lang` (place names are not translated messages)."""
    names = REGION_NAMES.get(code)
    if names is None:
        return code
    return names[0] if lang == "zh" else names[1]
