"""Admin analytics in private chat: /stats /sources /managers /dropoff /funnel /trend /export [period].

Only ADMIN_IDS get figures; anyone else gets a polite refusal and nothing else."""
from __future__ import annotations

import asyncio
import html
import tempfile
from pathlib import Path

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, FSInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.analytics import charts, queries, report
from bot.analytics.export import export_period, fit_for_telegram
from bot.analytics.periods import Period, PeriodError, parse_period
from bot.db.models import utcnow
from bot.i18n import Texts
from bot.settings import Settings
from funnel import Funnel
from handlers.filters import looks_like_command

router = Router(name="admin")
router.message.filter(F.chat.type == "private", looks_like_command)  # every handler is a command


async def _allowed(message: Message, is_admin: bool, t: Texts) -> bool:
    if not is_admin:
        await message.answer(t("admin-only"))
    return is_admin


async def _period(message: Message, command: CommandObject, settings: Settings, t: Texts) -> Period | None:
    try:
        return parse_period(command.args, settings.tz, utcnow())
    except PeriodError as exc:
        await message.answer(t("admin-period-bad", text=html.escape(exc.text[:64], quote=False),
                               example=exc.example))
        return None


async def _admin_period(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                        t: Texts) -> Period | None:
    if not await _allowed(message, is_admin, t):
        return None
    return await _period(message, command, settings, t)


@router.message(Command("stats"))
async def stats(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                session: AsyncSession, funnel: Funnel, t: Texts, locale: str) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    data = await queries.stats(session, funnel, period)
    await message.answer(report.render_stats(data, funnel, t, locale))


@router.message(Command("sources"))
async def sources(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                  session: AsyncSession, funnel: Funnel, t: Texts, locale: str) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    data = await queries.sources(session, funnel, period)
    await message.answer(report.render_sources(data, period, funnel, t, locale))


@router.message(Command("managers"))
async def managers(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                   session: AsyncSession, t: Texts) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    data = await queries.managers(session, period)
    await message.answer(report.render_managers(data, period, t))


@router.message(Command("dropoff"))
async def dropoff(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                  session: AsyncSession, funnel: Funnel, t: Texts, locale: str) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    data = await queries.dropoff(session, funnel, period)
    await message.answer(report.render_dropoff(data, period, funnel, t, locale))


@router.message(Command("funnel"))
async def funnel_chart(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                       session: AsyncSession, funnel: Funnel, t: Texts, locale: str) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    data = await queries.stats(session, funnel, period)
    label = report.period_label(period, t)
    png = await asyncio.to_thread(
        charts.funnel_chart, report.funnel_bars(data, funnel, locale), html.unescape(t("chart-funnel-title",
                                                                                         period=label)),
        t("chart-of-previous"), t("chart-empty"), report.chart_footnote(data, funnel, t, locale),
    )
    await message.answer_photo(BufferedInputFile(png, filename="funnel.png"), caption=t("funnel-caption", period=label))


@router.message(Command("trend"))
async def trend_chart(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                      session: AsyncSession, funnel: Funnel, t: Texts) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    points = await queries.trend(session, period, settings.tz)
    label = report.period_label(period, t)
    unit = t("chart-unit-month") if points and points[0].label.count("-") == 1 else t("chart-unit-day")
    png = await asyncio.to_thread(
        charts.trend_chart, [p.label for p in points], [p.leads for p in points], [p.won for p in points],
        html.unescape(t("chart-trend-title", unit=unit, period=label)), t("chart-leads"), t("chart-won"),
        t("chart-empty"),
    )
    await message.answer_photo(BufferedInputFile(png, filename="trend.png"), caption=t("trend-caption", period=label))


@router.message(Command("export"))
async def export(message: Message, command: CommandObject, is_admin: bool, settings: Settings,
                 session: AsyncSession, funnel: Funnel, t: Texts, locale: str) -> None:
    if (period := await _admin_period(message, command, is_admin, settings, t)) is None:
        return
    label = report.period_label(period, t)
    with tempfile.TemporaryDirectory(prefix="leadbot-export-") as folder:
        result = await export_period(session, funnel, period, settings.tz, locale, t, Path(folder))
        if not result.leads:
            await message.answer(t("export-empty"))
            return
        files = fit_for_telegram(result)
        if files is None:
            await message.answer(t("export-too-big"))
            return
        for item in files:
            if item.path.suffix == ".zip":
                caption = t("export-zip-caption", period=label)
            elif item.path.suffix == ".xlsx":
                caption = t("export-xlsx-caption")
            elif item.name.startswith("stage_history"):
                caption = t("export-history-caption", period=label, count=report.num(result.history))
            else:
                caption = t("export-caption", period=label, count=report.num(result.leads))
            await message.answer_document(FSInputFile(item.path, filename=item.name), caption=caption)
        if result.xlsx_skipped:
            await message.answer(t("export-xlsx-skipped"))
