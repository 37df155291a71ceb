from loyalist.errors import Conflict, NotFound


class RewardNotFound(NotFound):
    code = "reward_not_found"
    title = "Reward not found"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"
    title = "Redemption not found"


class OutOfStock(Conflict):
    code = "out_of_stock"
    title = "The reward is out of stock"


class LimitReached(Conflict):
    code = "limit_reached"
    title = "The member has reached this reward's limit"


class TierNotAllowed(Conflict):
    code = "tier_not_allowed"
    title = "The member's tier cannot redeem this reward"


class RewardNotAvailable(Conflict):
    code = "reward_not_available"
    title = "The reward is not available now"


class AlreadyCancelled(Conflict):
    code = "redemption_already_cancelled"
    title = "The redemption was already cancelled"


class AlreadyCollected(Conflict):
    code = "redemption_already_collected"
    title = "The redemption was already collected"


class RedemptionExpired(Conflict):
    code = "redemption_expired"
    title = "The redemption can no longer be collected"


class RedemptionCancelled(Conflict):
    code = "redemption_cancelled"
    title = "The redemption was cancelled"


class RedemptionCollected(Conflict):
    code = "redemption_collected"
    title = "A collected redemption cannot be cancelled"


class QuoteNotFound(NotFound):
    code = "quote_not_found"
    title = "Quote not found"


class QuoteExpired(Conflict):
    code = "quote_expired"
    title = "The quote is no longer valid"


class QuoteMismatch(Conflict):
    code = "quote_mismatch"
    title = "The quote is for another member or reward"


class PassRequired(Conflict):
    code = "pass_required"
    title = "Only holders of a paid membership pass can redeem this reward"
