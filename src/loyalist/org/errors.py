from loyalist.errors import Conflict, NotFound


class OrgUnitNotFound(NotFound):
    code = "org_unit_not_found"
    title = "Organisation unit not found"


class OrgUnitExists(Conflict):
    code = "org_unit_exists"
    title = "Organisation unit already exists"
